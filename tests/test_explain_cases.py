"""What an auditor reads, case by case (tests/fixtures/explain_cases.txt: the input beside the
lines the explanation must show), under the shipped policy and under a version with other
terms; every rejected kind (reject_cases.csv: the changed cell beside its codes) shows its
codes and messages; an out-of-scope claim says why; an unknown id fails in one line."""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from helpers import FIXTURES, VALID_LINE, run_lines
from typer.testing import CliRunner

from pa_batch.cli import app
from pa_batch.schemas.claim_extract import REJECT_CODES

DECISION_CASES = pd.read_csv(FIXTURES / "decision_cases.csv", dtype="str", keep_default_na=False)
REJECT_CASES = pd.read_csv(FIXTURES / "reject_cases.csv", dtype="str", keep_default_na=False)
SHIPPED = resources.files("pa_batch.policy.data").joinpath("baclofen-powder.toml").read_text()
V2_TERMS = {
    'version = "2024.1"': 'version = "2025.1"',
    "oral_max_mg_per_unit = 20.0": "oral_max_mg_per_unit = 25.0",
    "intrathecal_max_mg_per_ml = 2.0": "intrathecal_max_mg_per_ml = 1.5",
    "oral_pediatric_age = 12": "oral_pediatric_age = 10",
}
INPUT_FIELDS = {"route": "route", "strength": "strength", "unit": "strength_unit",
                "dx": "diagnosis_codes", "birth": "member_birth_date",
                "service": "service_date"}  # fmt: skip
TABLET = {"claim_id": "TABLET", "drug_name": "BACLOFEN 10 MG TAB", "ndc": "00000-1111-22"}


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _blocks() -> list[dict]:
    blocks, current = [], None
    for line in (FIXTURES / "explain_cases.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("== "):
            case, policy = line[3:].split(" under ")
            current = {"case": case, "policy": policy, "input": None, "expect": []}
            blocks.append(current)
        elif line.startswith("input: "):
            current["input"] = dict(field.split("=", 1) for field in line[7:].split(" "))
        else:
            current["expect"].append(line)
    return blocks


BLOCKS = _blocks()


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """Every decision case, every reject case and an out-of-scope tablet, run under each
    policy; the output directory of each."""
    lines = [
        {**VALID_LINE, "claim_id": case["case"], **{c: case[c] for c in INPUT_FIELDS.values()}}
        for case in DECISION_CASES.to_dict("records")
    ]
    lines += [
        {**VALID_LINE, "claim_id": f"REJECT_{case['case']}", case["column"]: case["value"]}
        for case in REJECT_CASES.to_dict("records")
        if case["column"] != "claim_id"
    ]
    lines.append({**VALID_LINE, **TABLET})
    made = {}
    for policy in ("shipped", "v2"):
        folder = tmp_path_factory.mktemp(f"explain_{policy}")
        shutil.copytree(FIXTURES / "reference", folder / "ref")
        options = ["--reference-dir", str(folder / "ref")]
        if policy == "v2":
            text = SHIPPED
            for old, new in V2_TERMS.items():
                assert old in text
                text = text.replace(old, new)
            (folder / "v2.toml").write_text(text)
            options += ["--policy", str(folder / "v2.toml")]
        made[policy] = run_lines(folder, lines, *options)
    return made


def test_every_block_restates_its_case_s_input():
    cases = DECISION_CASES.set_index("case")
    for block in BLOCKS:
        row = cases.loc[block["case"]]
        assert {INPUT_FIELDS[k]: v for k, v in block["input"].items()} == {
            column: row[column] for column in INPUT_FIELDS.values()
        }, block["case"]


def test_the_cases_cover_every_reason_and_advisory_under_both_policies():
    shown = " ".join(line for block in BLOCKS for line in block["expect"])
    for code in ("INDICATION_NOT_COVERED", "TOPICAL_ROUTE", "ROUTE_NOT_COVERED", "DX_MISSING",
                 "ROUTE_MISSING", "STRENGTH_MISSING", "STRENGTH_UNIT_INVALID",
                 "ORAL_DOSE_EXCEEDS_LIMIT", "INTRATHECAL_CONCENTRATION_EXCEEDS_LIMIT",
                 "COMMERCIALLY_AVAILABLE", "PEDIATRIC_ORAL_UNDER_12",
                 "PEDIATRIC_INTRATHECAL_UNDER_4", "DX_NOT_BILLABLE"):  # fmt: skip
        assert code in shown, code
    assert {block["policy"] for block in BLOCKS} == {"shipped", "v2"}


@pytest.mark.parametrize("block", BLOCKS, ids=[f"{b['case']}-under-{b['policy']}" for b in BLOCKS])
def test_the_explanation_reads_as_the_fixture_says(runs, block):
    result = _cli("explain", runs[block["policy"]], block["case"])
    assert result.exit_code == 0, result.output
    printed = [line.strip() for line in result.stdout.splitlines()]
    position = 0
    for expected in block["expect"]:
        if expected.startswith("!"):
            assert expected[1:] not in result.stdout, expected
            continue
        prefix = expected.endswith("…")
        wanted = expected.rstrip("…")
        for index in range(position, len(printed)):
            if printed[index] == wanted or (prefix and printed[index].startswith(wanted)):
                position = index + 1
                break
        else:
            pytest.fail(f"not shown (in this order): {expected}\n\n{result.stdout}")
    # the JSON says the same: a [FAIL → CODE] line is that criterion's status
    explained = json.loads(_cli("explain", runs[block["policy"]], block["case"], "--json").stdout)
    statuses = {c["code"]: c["status"] for c in explained["lines"][0]["criteria"]}
    for expected in block["expect"]:
        if expected.startswith("[FAIL → "):
            assert statuses[expected[8 : expected.index("]")]] == "fail"


@pytest.mark.parametrize(
    "case",
    [c for c in REJECT_CASES.to_dict("records") if c["column"] != "claim_id"],
    ids=lambda case: case["case"],
)
def test_each_rejected_kind_shows_its_codes_and_messages(runs, case):
    text = _cli("explain", runs["shipped"], f"REJECT_{case['case']}").stdout
    assert ": REJECTED (" in text
    for code in case["error_codes"].split("|"):
        assert f"  {code}: {REJECT_CODES[code]}" in text, code


def test_an_out_of_scope_claim_says_why_under_either_policy(runs):
    for policy in ("shipped", "v2"):
        text = _cli("explain", runs[policy], "TABLET").stdout
        assert "OUT_OF_SCOPE" in text
        assert (
            "out of scope: NDC 00000-1111-22 is not a listed product (the run's products.csv), "
            "and drug name 'BACLOFEN 10 MG TAB' does not name baclofen powder or bulk"
        ) in text


def test_an_unknown_id_fails_in_one_line(runs):
    result = _cli("explain", runs["shipped"], "NOT-A-CLAIM")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert result.stderr.rstrip().endswith(
        "no line of that claim in the run, and no record of it in the run's inputs "
        "(1 input(s) searched, unchanged since the run)"
    )


def test_numbers_are_json_numbers_with_the_version_s_limit(runs):
    for policy, oral, intrathecal in (("shipped", 20.0, 2.0), ("v2", 25.0, 1.5)):
        explained = json.loads(_cli("explain", runs[policy], "oral_exceeds_20", "--json").stdout)
        (line,) = explained["lines"]
        limits = {c["code"]: c["limit"] for c in line["criteria"]}
        assert limits["ORAL_DOSE_EXCEEDS_LIMIT"] == oral
        assert limits["INTRATHECAL_CONCENTRATION_EXCEEDS_LIMIT"] == intrathecal
        assert limits["DX_MISSING"] is None
        assert line["normalized"]["strength_value"] == 20.000001
        assert line["normalized"]["strength_unit"] == "mg"
        assert isinstance(line["source"]["row"], int)
    shortage = json.loads(
        _cli("explain", runs["shipped"], "approved_oral_10mg_in_shortage", "--json").stdout
    )["lines"][0]
    assert shortage["commercial_strength"]["content"]["strength"] == 10.0
