"""The registries are complete: every reason, advisory and reject code has fixture cases and
documentation, and the README's reason-code table is the one generated from the registry."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from helpers import FIXTURES
from pa_batch.schemas.claim_extract import REJECT_CODES

from pa_batch.docs import reason_code_table
from pa_batch.rules import ADVISORIES, CRITERIA

SPEC_ORDER = [
    "INDICATION_NOT_COVERED", "TOPICAL_ROUTE", "ROUTE_NOT_COVERED", "DX_MISSING",
    "ROUTE_MISSING", "STRENGTH_MISSING", "STRENGTH_UNIT_INVALID", "ORAL_DOSE_EXCEEDS_LIMIT",
    "INTRATHECAL_CONCENTRATION_EXCEEDS_LIMIT", "COMMERCIALLY_AVAILABLE",
]  # fmt: skip
# reject codes exercised by dedicated tests rather than the one-column-changed table
DEDICATED_REJECT_TESTS = {"MALFORMED_RECORD", "DUPLICATE_KEY"}


def test_criteria_are_in_spec_reporting_order():
    assert [c.code for c in CRITERIA] == SPEC_ORDER


def test_every_criterion_and_advisory_is_documented():
    for unit in (*CRITERIA, *ADVISORIES):
        assert unit.clause.strip() and unit.when.strip(), unit.code


def test_every_reason_and_advisory_has_decision_cases():
    cases = pd.read_csv(FIXTURES / "decision_cases.csv", dtype="str", keep_default_na=False)
    reported = set("|".join(cases["reasons"]).split("|")) | set(
        "|".join(cases["advisories"]).split("|")
    )
    missing = {u.code for u in (*CRITERIA, *ADVISORIES)} - reported
    assert not missing


def test_every_reject_code_has_cases():
    cases = pd.read_csv(FIXTURES / "reject_cases.csv", dtype="str", keep_default_na=False)
    covered = set("|".join(cases["error_codes"]).split("|")) | DEDICATED_REJECT_TESTS
    assert set(REJECT_CODES) - covered == set()


def test_readme_reason_table_is_generated_from_the_registry():
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert reason_code_table() in readme
