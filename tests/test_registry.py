"""The registries are complete: every reason, advisory and reject code has fixture cases and
documentation, and every generated table of the README and docs/contract.md is the one the
registries generate today."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from gen_docs import DOCUMENTS, GENERATORS, reason_code_table, render
from helpers import FIXTURES

from pa_batch.core.rules import ADVISORIES, CRITERIA, OBSERVATIONS
from pa_batch.schemas.claim_extract import REJECT_CODES

SPEC_ORDER = [
    "INDICATION_NOT_COVERED", "TOPICAL_ROUTE", "ROUTE_NOT_COVERED", "DX_MISSING",
    "ROUTE_MISSING", "STRENGTH_MISSING", "STRENGTH_UNIT_INVALID", "ORAL_DOSE_EXCEEDS_LIMIT",
    "INTRATHECAL_CONCENTRATION_EXCEEDS_LIMIT", "COMMERCIALLY_AVAILABLE",
]  # fmt: skip
# reject codes exercised by dedicated tests rather than the one-column-changed table
DEDICATED_REJECT_TESTS = {"MALFORMED_RECORD", "DUPLICATE_KEY", "NO_POLICY_IN_FORCE"}


def test_criteria_are_in_spec_reporting_order():
    assert [c.code for c in CRITERIA] == SPEC_ORDER


def test_every_criterion_and_advisory_is_documented():
    for unit in (*CRITERIA, *ADVISORIES):
        assert unit.clause.strip() and unit.when.strip(), unit.code


def test_every_criterion_says_what_it_looks_at_in_terms_explain_shows():
    assert {c.observes for c in CRITERIA} <= set(OBSERVATIONS)


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


ROOT = Path(__file__).parent.parent


def test_readme_reason_table_is_generated_from_the_registry():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert reason_code_table() in readme


@pytest.mark.parametrize("document", DOCUMENTS)
def test_generated_tables_match_the_registries(document):
    """`make docs` would change nothing: the docs say what the code does."""
    text = (ROOT / document).read_text(encoding="utf-8")
    assert render(text) == text


def test_the_contract_document_carries_every_generated_table():
    contract = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    for name in GENERATORS:
        assert f"<!-- BEGIN GENERATED: {name} -->" in contract, name


def test_the_contract_lists_every_route_spelling_and_unit():
    from pa_batch.core.normalize import ROUTE_SYNONYMS, STRENGTH_UNITS

    contract = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    for spelling in [*ROUTE_SYNONYMS, *STRENGTH_UNITS]:
        assert f"`{spelling}`" in contract, spelling


def test_docs_never_send_a_reader_outside_the_repository():
    for document in ("README.md", "docs/contract.md"):
        text = (ROOT / document).read_text(encoding="utf-8")
        assert "SPEC.md" not in text and "../shared" not in text, document


@pytest.mark.slow  # loads the whole ICD-10-CM code set: ~5 s a process
def test_shipped_billable_code_list_is_the_pinned_code_set():
    """The DX_NOT_BILLABLE list a run reads is exactly what the pinned simple-icd-10-cm makes:
    bumping the package without `make docs` fails here."""
    from importlib import resources

    from pa_batch.policy import icd10cm

    shipped = resources.files("pa_batch.policy.data").joinpath(icd10cm.CODE_LIST).read_text()
    from build_icd10cm_list import code_list_from_package

    assert shipped == code_list_from_package()
    assert len(icd10cm.billable_codes()) > 70_000


@pytest.mark.parametrize(
    "code, billable",
    [("G8000", False), ("G800", True), ("G80.0", True), ("g80.0", True), ("G35", False),
     ("G80", False), ("G35-G37", False), ("6", False), ("Z0000", True), ("Z00.00", True)],
)  # fmt: skip
@pytest.mark.slow  # loads the whole ICD-10-CM code set: ~5 s a process
def test_billable_means_a_leaf_of_the_code_set(code, billable):
    """Side by side with the package's own answer (G35 is a category since FY2026)."""
    import warnings

    from pa_batch.policy import icd10cm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import simple_icd_10_cm as cm
    assert icd10cm.is_billable(code) is billable
    assert (cm.is_valid_item(code.upper()) and cm.is_leaf(code.upper())) is billable
