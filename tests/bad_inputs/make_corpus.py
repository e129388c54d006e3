"""Writes the bad-input corpus beside this script; cases.csv says what each file must do.

The files are committed, so tests read them as they are; this script documents how the
byte-exact ones (CRLF, BOM, gzip, Parquet, truncations) were made and remakes them:

    .venv/bin/python tests/bad_inputs/make_corpus.py
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))
from helpers import HEADER, VALID_LINE  # noqa: E402  (tests/helpers.py, beside this folder)

COLUMNS = HEADER.split(",")


def line(claim: str, **changes: str) -> str:
    """A valid, approvable baclofen powder line (oral 5 mg, MS) with some fields changed."""
    values = {**VALID_LINE, "claim_id": claim, **changes}
    return ",".join(values[c] for c in COLUMNS)


def text(name: str, lines: list[str], newline: str = "\n", encoding: str = "utf-8") -> None:
    (HERE / name).write_bytes((newline.join(lines) + newline).encode(encoding))


def parquet(name: str, columns: dict[str, pa.Array]) -> bytes:
    path = HERE / name
    pq.write_table(pa.table(columns), path, compression="zstd", write_page_checksum=True)
    return path.read_bytes()


def text_columns(rows: list[dict[str, str]]) -> dict[str, pa.Array]:
    return {c: pa.array([r.get(c) for r in rows], pa.string()) for c in COLUMNS}


def fields(claim: str, **changes: str | None) -> dict[str, str | None]:
    return dict(zip(COLUMNS, line(claim).split(","), strict=True)) | changes


def main() -> None:
    # --- record level: the run commits (exit 0) -----------------------------------------
    text("crlf.csv", [HEADER, line("C1"), line("C2"), line("C3")], newline="\r\n")
    (HERE / "bom.csv").write_bytes(b"\xef\xbb\xbf" + f"{HEADER}\n{line('C1')}\n".encode())
    quoted = [
        HEADER,
        line("C1", drug_name='"BACLOFEN POWDER, USP"', diagnosis_codes='"G35, G80.1"'),
        line("C2", drug_name='"BACLOFEN\r\nPOWDER"'),
        line("C3", drug_name='"BACLOFEN ""MICRONIZED"" POWDER"'),
        line("C4"),
    ]
    (HERE / "bom_crlf_quoted.csv").write_bytes(b"\xef\xbb\xbf" + "\r\n".join(quoted).encode())
    odd_header = ", ".join(f" {c.upper() if i % 2 else c.title()} " for i, c in enumerate(COLUMNS))
    text("odd_case_headers.csv", [odd_header, line("C1"), line("C2")])
    text("extra_columns.csv", [f"{HEADER},Notes,quantity", f"{line('C1')},free text,30"])
    text(
        "field_counts.csv",
        [HEADER, line("C1"), "C2,1,M1", f"{line('C3')},surplus", line("C4"), "", line("C5")],
    )
    text(
        "unterminated_quote.csv",
        [HEADER, line("C1"), line("C2", drug_name='"BACLOFEN'), line("C3")],
    )
    text("blank_lines.csv", [HEADER, "", line("C1"), "", "", line("C2"), ""])
    text("header_only.csv", [HEADER])
    (HERE / "no_final_newline.csv").write_text(f"{HEADER}\n{line('C1')}\n{line('C2')}")
    (HERE / "claims.csv.gz").write_bytes(
        gzip.compress(f"{HEADER}\n{line('C1')}\nC2,1\n{line('C3')}\n".encode(), mtime=0)
    )
    text(
        "latin1.csv",
        [HEADER, line("C1", drug_name="BACLOFEN POWDER (CRÈME BASE)")],
        encoding="latin-1",
    )
    text("utf16.csv", [HEADER, line("C1")], encoding="utf-16")
    parquet(
        "parquet_text_numbers.parquet",
        text_columns([
            fields("C1"),
            fields("C2", line_number="1.0"),
            fields("C3", line_number="one"),
            fields("C4", strength="five"),
            fields("C5", strength="1e400"),
        ]),
    )  # fmt: skip
    parquet(
        "parquet_text_in_dates.parquet",
        text_columns([
            fields("C1", service_date="20240501"),
            fields("C2", service_date="not a date"),
            fields("C3", service_date="2024-02-30"),
            fields("C4", member_birth_date="yesterday"),
        ]),
    )  # fmt: skip
    # a header cell with a quoted line break (Excel's Alt+Enter) is one header record
    text(
        "header_cell_line_break.csv",
        [f'{HEADER},"Reviewer\nnotes"', f"{line('C1')},", f"{line('C2')},"],
    )
    text(
        "header_cell_trailing_break.csv",
        [f'{HEADER},"Notes\n"', f"{line('C1')},", f"{line('C2')},"],
    )
    text("blank_line_before_header.csv", ["", HEADER, line("C1")])
    (HERE / "header_only_no_newline.csv").write_text(HEADER)
    (HERE / "claims_upper.CSV.GZ").write_bytes(
        gzip.compress(f"{HEADER}\n{line('C1')}\n{line('C2')}\n".encode(), mtime=0)
    )
    text("whitespace_required_cell.csv", [HEADER, line("C1", member_id="   ")])
    # pd.read_csv(...).to_parquet() stores an NDC as a number: its leading zeros are lost
    numeric_ndc = text_columns([fields("C1"), fields("C2"), fields("C3"), fields("C4")])
    numeric_ndc["ndc"] = pa.array([172572860, 12345678901, -5, 123456789012], pa.int64())
    parquet("integer_ndc.parquet", numeric_ndc)
    typed = text_columns([fields("C1"), fields("C2"), fields("C3")])
    typed["line_number"] = pa.array([1, 2, None], pa.int64())
    typed["service_date"] = pa.array([19844, 19845, 19846], pa.date32())  # 2024-05-01...
    typed["strength"] = pa.array([5.0, 25.0, 5.0], pa.float64())
    parquet("parquet_typed.parquet", typed)

    # --- file level: the run fails, nothing committed (exit 1) --------------------------
    (HERE / "empty.csv").write_bytes(b"")
    text("blank_header.csv", ["", ""])
    text("missing_column.csv", [HEADER.replace(",ndc", ""), "C1,1,M1,1980-01-02,2024-05-01"])
    text("duplicate_column.csv", [f"{HEADER},claim_id", f"{line('C1')},C1"])
    text("duplicate_column_case.csv", [f"{HEADER},Member_ID ", f"{line('C1')},M1"])
    text("claims.txt", [HEADER, line("C1")])
    (HERE / "folder.csv").mkdir(exist_ok=True)
    (HERE / "folder.csv" / "README").write_text("a directory named like an extract\n")
    complete = gzip.compress(f"{HEADER}\n{line('C1')}\n".encode() * 2000, mtime=0)
    (HERE / "truncated.csv.gz").write_bytes(complete[: len(complete) // 2])
    text("not_gzip.csv.gz", [HEADER, line("C1")])
    rows = [fields(f"C{i}") for i in range(2000)]
    whole = parquet("truncated.parquet", text_columns(rows))
    (HERE / "truncated.parquet").write_bytes(whole[: len(whole) // 2])
    whole = parquet("corrupt.parquet", text_columns(rows))
    middle = len(whole) // 2  # inside the column chunks: flip bytes of compressed pages
    damaged = whole[:middle] + bytes(b ^ 0xFF for b in whole[middle : middle + 64])
    (HERE / "corrupt.parquet").write_bytes(damaged + whole[middle + 64 :])
    text("not_parquet.parquet", [HEADER, line("C1")])
    listed = text_columns([fields("C1")])
    listed["drug_name"] = pa.array([["BACLOFEN", "POWDER"]])
    parquet("unsupported_type.parquet", listed)
    text("missing_policy_column.csv", [HEADER.replace(",route,", ",route_of_admin,"), line("C1")])
    required_only = "claim_id,line_number,member_id,service_date,ndc"
    text("only_required_columns.csv", [required_only, "C1,1,M1,2024-05-01,00000-0000-00"])
    text("semicolon_header.csv", [HEADER.replace(",", ";"), line("C1").replace(",", ";")])
    # no header row: the first record is taken as one; two of its cells are equal
    text("no_header.csv", [line("C1", service_date="1980-01-02"), line("C2")])
    # invalid UTF-8 in a Parquet string column (the bytes are stored as they came)
    garbled = text_columns([fields("C1")])
    raw = pa.array([b"BACLOFEN \xff POWDER"], pa.binary())
    garbled["drug_name"] = pa.Array.from_buffers(pa.string(), 1, raw.buffers())
    parquet("invalid_utf8.parquet", garbled)
    (HERE / "user_out").mkdir(exist_ok=True)
    (HERE / "user_out" / "results.parquet").write_text("the user's own file, not pa-batch's\n")
    misspelt = HERE / "misspelt_reference"
    misspelt.mkdir(exist_ok=True)
    text("misspelt_reference/shortage.csv", ["route,strength,strength_unit,start_date,end_date",
                                              "oral,10,mg,2024-03-01,2024-06-30"])  # fmt: skip
    extra_field = HERE / "extra_field_reference"
    extra_field.mkdir(exist_ok=True)
    text("extra_field_reference/commercial_strengths.csv",
         ["route,strength,strength_unit,start_date,end_date", "oral,10,mg,,,"])  # fmt: skip
    reference = HERE / "bad_reference"
    reference.mkdir(exist_ok=True)
    text("bad_reference/shortages.csv", ["route,strength,strength_unit,start_date,end_date",
                                          "oral,10,mg,2024-13-01,"])  # fmt: skip


if __name__ == "__main__":
    main()
