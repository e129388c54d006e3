"""Property test: the vectorized engine agrees with a small row-by-row reading of SPEC §3–5,
written independently here, on widely varying generated extracts."""

from __future__ import annotations

import calendar
import datetime as dt
import re

import numpy as np
import pyarrow as pa
import pytest
from helpers import FIXTURES, examples
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pa_batch.core.arrow_text import text_records
from pa_batch.core.batch import Batch, decide_batch
from pa_batch.policy.reference import load_reference
from pa_batch.runner.state import ClaimKeyRegistry, finish_batch

# ---- an independent, deliberately plain reference of the policy -------------------------

ROUTES = {"oral": "oral", "po": "oral", "by mouth": "oral", "26643006": "oral",
          "intrathecal": "intrathecal", "it": "intrathecal", "ith": "intrathecal",
          "72607000": "intrathecal", "topical": "topical", "top": "topical",
          "transdermal": "topical", "cutaneous": "topical", "6064005": "topical",
          "45890007": "topical"}  # fmt: skip
UNITS = {"mg": ("mass", 1), "mg/unit": ("mass", 1), "mg/cap": ("mass", 1),
         "mg/capsule": ("mass", 1), "mg/tab": ("mass", 1), "mg/tablet": ("mass", 1),
         "mg/dose": ("mass", 1), "mcg": ("mass", 0.001), "ug": ("mass", 0.001),
         "µg": ("mass", 0.001), "μg": ("mass", 0.001), "g": ("mass", 1000),
         "mg/ml": ("conc", 1), "mcg/ml": ("conc", 0.001), "ug/ml": ("conc", 0.001),
         "µg/ml": ("conc", 0.001), "μg/ml": ("conc", 0.001), "mg/5ml": ("conc", 0.2),
         "mg/l": ("conc", 0.001), "%": ("pct", None)}  # fmt: skip
COMMERCIAL = {("oral", "mass", 10.0), ("oral", "mass", 20.0), ("intrathecal", "conc", 0.05),
              ("intrathecal", "conc", 0.5), ("intrathecal", "conc", 2.0)}  # fmt: skip
# tests/fixtures/reference: shortages.csv and products.csv
SHORTAGES = [
    ("oral", "mass", 10.0, dt.date(2024, 3, 1), dt.date(2024, 6, 30)),
    ("intrathecal", "conc", 0.05, dt.date(2023, 10, 1), dt.date.max),
]
PRODUCTS = {"51927100400"}
SPASTIC = ("R252", "G35", "G800", "G801", "G802", "G811", "G822", "G825", "G114", "G041",
           "G95", "S141", "S241", "S341")  # fmt: skip


def clean(value):
    value = None if value is None else value.strip()
    return value or None


def parse_date(text):
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})|(\d{4})(\d{2})(\d{2})", text or "")
    if not m:
        return None
    y, mo, d = (int(g) for g in (m.groups()[:3] if m.group(1) else m.groups()[3:]))
    try:
        return dt.date(y, mo, d)
    except ValueError:
        return None


def parse_ndc(text):
    if re.fullmatch(r"\d{11}", text):
        return text
    parts = text.split("-")
    shapes = {(5, 4, 2), (4, 4, 2), (5, 3, 2), (5, 4, 1)}
    if len(parts) == 3 and all(p.isdigit() for p in parts) and tuple(map(len, parts)) in shapes:
        return parts[0].zfill(5) + parts[1].zfill(4) + parts[2].zfill(2)
    return None


def parse_number(text):
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?", text):
        return None
    value = float(text)
    return value if np.isfinite(value) and value > 0 else None


def reference_outcome(row, seen, products):
    r = {k: clean(v) for k, v in row.items()}
    errors = []
    for col in ("claim_id", "line_number", "member_id", "service_date", "ndc"):
        if r[col] is None:
            errors.append("MISSING_REQUIRED_VALUE")
    line = r["line_number"]
    if line is not None and not (re.fullmatch(r"\+?\d+(\.0*)?", line) and int(float(line)) >= 1):
        errors.append("INVALID_LINE_NUMBER")
    if r["service_date"] is not None and parse_date(r["service_date"]) is None:
        errors.append("INVALID_DATE")
    if r["ndc"] is not None and parse_ndc(r["ndc"]) is None:
        errors.append("INVALID_NDC")
    if errors:
        return ("rejected", sorted(errors), "")
    name = (r["drug_name"] or "").lower()
    powder = parse_ndc(r["ndc"]) in products or (
        "baclofen" in name and ("powder" in name or "bulk" in name)
    )
    if not powder:
        return ("out_of_scope", [], "")
    service = parse_date(r["service_date"])
    if r["strength"] is not None and parse_number(r["strength"]) is None:
        errors.append("INVALID_STRENGTH")
    unit_key = re.sub(r"\s+", "", r["strength_unit"] or "").lower()
    if r["strength_unit"] is not None and unit_key not in UNITS:
        errors.append("INVALID_STRENGTH_UNIT")
    codes = [
        c for c in re.split(r"[,;|\s]+", (r["diagnosis_codes"] or "").upper().replace(".", "")) if c
    ]
    if any(not re.fullmatch(r"[A-Z][0-9][0-9A-Z]{1,5}", c) for c in codes):
        errors.append("INVALID_DIAGNOSIS_CODE")
    birth = parse_date(r["member_birth_date"]) if r["member_birth_date"] else None
    if r["member_birth_date"] is not None and birth is None:
        errors.append("INVALID_DATE")
    elif birth is not None and birth > service:
        errors.append("BIRTH_AFTER_SERVICE")
    if errors:
        return ("rejected", sorted(errors), "")
    key = (r["claim_id"], int(float(r["line_number"])))
    if key in seen:
        return ("rejected", ["DUPLICATE_KEY"], "")
    seen.add(key)

    route = (
        None if r["route"] is None else ROUTES.get(re.sub(r"\s+", " ", r["route"].lower()), "other")
    )
    kind, factor = UNITS.get(unit_key, (None, None)) if r["strength_unit"] else (None, None)
    amount = parse_number(r["strength"]) if r["strength"] else None
    reasons = []
    if codes and not any(c.startswith(SPASTIC) for c in codes):
        reasons.append("INDICATION_NOT_COVERED")
    if route == "topical":
        reasons.append("TOPICAL_ROUTE")
    if route == "other":
        reasons.append("ROUTE_NOT_COVERED")
    if not codes:
        reasons.append("DX_MISSING")
    if route is None:
        reasons.append("ROUTE_MISSING")
    dosed = route in ("oral", "intrathecal")
    if dosed and (amount is None or kind is None):
        reasons.append("STRENGTH_MISSING")
    fits = (route == "oral" and kind in ("mass", "conc")) or (
        route == "intrathecal" and kind == "conc"
    )
    if dosed and kind is not None and not fits:
        reasons.append("STRENGTH_UNIT_INVALID")
    if dosed and fits and amount is not None:
        value = round(amount * factor, 6)
        if route == "oral" and value > 20:
            reasons.append("ORAL_DOSE_EXCEEDS_LIMIT")
        if route == "intrathecal" and value > 2:
            reasons.append("INTRATHECAL_CONCENTRATION_EXCEEDS_LIMIT")
        in_shortage = any(
            (route, kind, value) == (r, k, v) and start <= service <= end
            for r, k, v, start, end in SHORTAGES
        )
        if (route, kind, value) in COMMERCIAL and not in_shortage:
            reasons.append("COMMERCIALLY_AVAILABLE")
    investigational = {"INDICATION_NOT_COVERED", "TOPICAL_ROUTE", "ROUTE_NOT_COVERED"}
    decision = (
        "investigational" if investigational & set(reasons) else "denied" if reasons else "approved"
    )
    advisories = []
    if birth is not None:
        age = service.year - birth.year - ((service.month, service.day) < (birth.month, birth.day))
        if route == "oral" and age < 12:
            advisories.append("PEDIATRIC_ORAL_UNDER_12")
        if route == "intrathecal" and age < 4:
            advisories.append("PEDIATRIC_INTRATHECAL_UNDER_4")
    if service >= dt.date(2025, 10, 1) and any(not _billable(c) for c in codes):
        advisories.append("DX_NOT_BILLABLE")
    end = ""
    if decision == "approved":
        year = service.year + 1
        day = min(service.day, calendar.monthrange(year, service.month)[1])
        end = str(dt.date(year, service.month, day) - dt.timedelta(days=1))
    return (decision, reasons, "|".join(advisories), end)


# ---- generated extracts ----------------------------------------------------------------


def _billable(code: str) -> bool:
    """A leaf of ICD-10-CM FY2026, asked of the code set itself, one code at a time."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm as cm
    return cm.is_valid_item(code) and cm.is_leaf(code)


def mostly(valid: list[str], invalid: list[str]) -> st.SearchStrategy[str]:
    """Valid values most of the time, so that lines get past validation and are decided."""
    return st.sampled_from(valid * 6 + invalid)


cells = {
    "claim_id": mostly(["C1", "C2", " C3 ", "C4", "C5", "C6"], ["", "C1 "]),
    "line_number": mostly(["1", "2", "1.0", "01", "+2"], ["0", "1.5", "-1", "x", ""]),
    "member_id": mostly(["M1", "M2"], ["  "]),
    "service_date": mostly(["2024-05-01", "20240415", "2024-02-29", "2024-06-30", "2024-07-01",
                            "2025-12-31", "2024-03-01", "2025-09-30", "2025-10-01"], ["2023-02-29", "2024-5-1", ""]),
    "ndc": mostly(["12345678901", "51927-1004-00", "1234-5678-90", "12345-678-90",
                   "12345-6789-0"], ["1234567890", "", "ABCDE"]),
    "drug_name": mostly(["BACLOFEN POWDER", "baclofen usp bulk", "powder of baclofen"],
                        ["Baclofen 10 mg tab", "ASPIRIN", ""]),
    "route": st.one_of(st.sampled_from(["oral", "PO", " By  Mouth ", "IT", "72607000", "topical",
                                        "45890007", "rectal", "", "oral", "intrathecal"]),
                       st.text(max_size=4)),
    "strength": st.one_of(st.sampled_from(["5", "10", "20", "20.0000004", "25", "0.5", "2", "3",
                                           "0.015", "20000", "-5", "0", "abc", "", "1e1", "0.05"]),
                          st.decimals(min_value=0, max_value=50, places=7).map(str)),
    "strength_unit": mostly(["mg", "MG", "mcg", "µg", "g", "mg/mL", "mcg/ml", "mg/5 mL", "mg/L",
                             "%", "mg/cap", ""], ["tsp"]),
    "diagnosis_codes": st.one_of(mostly(["G35", "G35.A", "R25.2", "M62.838", "G80.1;M54.50", "Z99Z", "",
                                         "s14.101s | g95.0"], ["123", "G3"]),
                                 st.text(alphabet="GRM0123456789.;, ", max_size=12)),
    "member_birth_date": mostly(["1980-01-02", "2016-03-01", "2021-01-01", "", "20120501"],
                                ["2024-05-02", "1980-02-30"]),
}  # fmt: skip
ROW = st.fixed_dictionaries(cells)


@settings(max_examples=examples(100), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROW, min_size=1, max_size=40))
@pytest.mark.slow
def test_engine_matches_row_by_row_reference(rows):
    reference = load_reference(FIXTURES / "reference")
    columns = {c: pa.array([row[c] for row in rows], pa.string()) for c in cells}
    records = text_records(columns, len(rows))
    batch = Batch(records, np.arange(1, len(rows) + 1))
    with ClaimKeyRegistry() as claim_keys:
        outcome = finish_batch(decide_batch(batch, "generated.csv", reference), claim_keys)

    seen: set = set()
    expected = [reference_outcome(row, seen, PRODUCTS) for row in rows]
    kept = outcome.decided if outcome.kept is None else outcome.decided[outcome.kept]
    results = kept.set_index("source_row")
    rejects = outcome.rejects.groupby("source_row")["error_code"].agg(sorted)
    for number, want in enumerate(expected, start=1):
        if want[0] == "rejected":
            assert rejects.get(number) == want[1], (number, rows[number - 1])
        elif want[0] == "out_of_scope":
            assert number not in results.index and number not in rejects.index
        else:
            got = results.loc[number]
            end = (
                ""
                if got["approval_end"] is None or str(got["approval_end"]) in ("NaT", "None")
                else str(got["approval_end"].date())
            )
            observed = (
                got["decision"],
                got["reasons"].split("|") if got["reasons"] else [],
                got["advisories"],
                end,
            )
            assert observed == want, (number, rows[number - 1])
    assert outcome.counts.rows_read == len(rows)
