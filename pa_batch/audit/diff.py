"""`pa-batch diff OLD NEW`: what changed between two committed runs, line by line.

Reads the runs' own results (never re-decides). Lines are matched on (claim_id,
line_number), the claim line's key, unique among a run's results. A line differs when its
decision, reasons or approval window differ, or when only one run decided it.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from pa_batch.audit.history import read_run_table
from pa_batch.errors import RunError

KEY = ["claim_id", "line_number"]
COMPARED = ["decision", "reasons", "approval_start", "approval_end"]
NONE = "(none)"
DIFF_SCHEMA = pa.schema(
    [
        ("claim_id", pa.string()),
        ("line_number", pa.int64()),
        ("service_date", pa.date32()),
        ("change", pa.string()),
        ("old_decision", pa.string()),
        ("new_decision", pa.string()),
        ("old_reasons", pa.string()),
        ("new_reasons", pa.string()),
        ("old_approval_start", pa.date32()),
        ("new_approval_start", pa.date32()),
        ("old_approval_end", pa.date32()),
        ("new_approval_end", pa.date32()),
    ]
)


def read_results(run_dir: Path) -> pd.DataFrame:
    """A committed run's results, whichever format it wrote, typed for comparing."""
    frame = read_run_table(run_dir, "results", [*KEY, "service_date", *COMPARED])
    try:
        frame["line_number"] = frame["line_number"].astype("int64")
        for column in ("service_date", "approval_start", "approval_end"):
            frame[column] = _dates(frame[column])
    except (ValueError, TypeError, OverflowError, KeyError):
        raise RunError(
            "damaged: results hold a value of the wrong type", file=str(run_dir)
        ) from None
    frame["reasons"] = frame["reasons"].fillna("")
    return frame


def _dates(values: pd.Series) -> pd.Series:
    """Dates as datetime64[s] (years up to 9999, and past it in runs written before approval
    windows stopped at 9999-12-31), from Parquet dates or CSV text."""
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return values.astype("datetime64[s]")
    days = np.array(values.to_numpy(dtype=object, na_value=None), dtype="datetime64[D]")
    return pd.Series(days.astype("datetime64[s]"), index=values.index)


def diff_runs(old: pd.DataFrame, new: pd.DataFrame) -> pd.DataFrame:
    both = old.merge(new, on=KEY, how="outer", suffixes=("_old", "_new"), indicator=True)
    only_old = both["_merge"] == "left_only"
    only_new = both["_merge"] == "right_only"
    changes = pd.Series("", index=both.index, dtype="str")
    for column, label in (
        ("decision", "decision"),
        ("reasons", "reasons"),
        ("approval_start", "approval window"),
        ("approval_end", "approval window"),
    ):
        differs = ~(
            (both[f"{column}_old"] == both[f"{column}_new"]).fillna(False)
            | (both[f"{column}_old"].isna() & both[f"{column}_new"].isna())
        )
        differs &= ~(only_old | only_new)
        mark = differs & ~changes.str.contains(label, regex=False)
        changes = changes.where(~mark, changes.where(changes == "", changes + ", ") + label)
    changes = changes.where(~only_old, "only in old").where(~only_new, "only in new")
    changed = both[changes != ""].assign(change=changes[changes != ""])
    return (
        pd.DataFrame(
            {
                "claim_id": changed["claim_id"],
                "line_number": changed["line_number"],
                "service_date": changed["service_date_new"].fillna(changed["service_date_old"]),
                "change": changed["change"],
                "old_decision": changed["decision_old"],
                "new_decision": changed["decision_new"],
                "old_reasons": changed["reasons_old"],
                "new_reasons": changed["reasons_new"],
                "old_approval_start": changed["approval_start_old"],
                "new_approval_start": changed["approval_start_new"],
                "old_approval_end": changed["approval_end_old"],
                "new_approval_end": changed["approval_end_new"],
            }
        )
        .sort_values(KEY, kind="stable")
        .reset_index(drop=True)
    )


def transitions(differences: pd.DataFrame) -> Counter[tuple[str, str]]:
    old = differences["old_decision"].fillna(NONE).astype("str")
    new = differences["new_decision"].fillna(NONE).astype("str")
    return Counter(zip(old, new, strict=True))


def write_diff(differences: pd.DataFrame, path: Path) -> None:
    from pa_batch.io.commit import FILE_MODE
    from pa_batch.io.tables import TableWriter

    name = path.name.lower()
    if name.endswith(".parquet"):
        fmt = "parquet"
    elif name.endswith(".csv"):
        fmt = "csv"
    else:
        raise RunError("the diff file must end in .csv or .parquet", file=str(path))
    temporary = path.with_name(f".{path.name}.partial")
    try:
        writer = TableWriter(temporary, DIFF_SCHEMA, fmt)
        writer.write(differences)
        writer.close()
        os.chmod(temporary, FILE_MODE)  # it holds claim ids and dates, as the run's files do
        temporary.replace(path)
    except OSError as error:
        temporary.unlink(missing_ok=True)
        raise RunError(f"cannot write the diff ({error.strerror})", file=str(path)) from None
