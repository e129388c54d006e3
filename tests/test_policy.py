"""The policy as data: versions by service date, NO_POLICY_IN_FORCE, a definition that fails
naming its key, and a policy change seen through `pa-batch diff`."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import pandas as pd
import pytest
from helpers import HEADER, nothing_published
from typer.testing import CliRunner

from pa_batch.cli import app

SHIPPED = resources.files("pa_batch.policy.data").joinpath("baclofen-powder.toml").read_text()
LINE = "C{n},1,M1,1980-01-02,{date},00000-0000-00,BACLOFEN POWDER,oral,{mg},mg,G35"


def _cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def _two_versions(tmp_path: Path, second_limit: float = 25.0) -> Path:
    """Today's policy until 2025-06-30, then a version with another oral limit."""
    first = SHIPPED.replace(
        'version = "2024.1"\n', 'version = "2024.1"\neffective_to = 2025-06-30\n'
    )
    versions = first.split("\n[[versions]]\n", 1)[1]
    second = (
        versions.replace('version = "2024.1"', 'version = "2025.2"')
        .replace("effective_to = 2025-06-30", "effective_from = 2025-07-01")
        .replace("oral_max_mg_per_unit = 20.0", f"oral_max_mg_per_unit = {second_limit}")
    )
    path = tmp_path / "policy.toml"
    path.write_text(first + "\n[[versions]]\n" + second)
    return path


def _extract(tmp_path: Path, lines: list[tuple[int, str, str]]) -> Path:
    path = tmp_path / "claims.csv"
    rows = [LINE.format(n=n, date=date, mg=mg) for n, date, mg in lines]
    path.write_text(HEADER + "\n" + "\n".join(rows) + "\n")
    return path


def test_each_line_is_decided_under_the_version_in_force_on_its_service_date(tmp_path):
    policy = _two_versions(tmp_path)
    extract = _extract(tmp_path, [(1, "2025-06-30", "22"), (2, "2025-07-01", "22")])
    out = tmp_path / "out"
    result = _cli("run", extract, "--out", out, "--policy", policy)
    assert result.exit_code == 0, result.output
    results = pd.read_parquet(out / "results.parquet")
    assert results[["claim_id", "policy_version", "decision", "reasons"]].values.tolist() == [
        ["C1", "2024.1", "denied", "ORAL_DOSE_EXCEEDS_LIMIT"],
        ["C2", "2025.2", "approved", ""],
    ]
    summary = json.loads((out / "summary.json").read_text())
    import hashlib

    assert summary["policy"]["sha256"] == hashlib.sha256(policy.read_bytes()).hexdigest()
    assert [v["version"] for v in summary["policy"]["versions"]] == ["2024.1", "2025.2"]
    assert summary["policy"]["origin"] == str(policy)
    run_dir = out / ".pa-batch" / "current"
    assert (run_dir / "policy.toml").read_bytes() == policy.read_bytes()


def test_a_line_no_version_covers_is_rejected_no_policy_in_force(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_text(
        SHIPPED.replace('version = "2024.1"\n', 'version = "2024.1"\neffective_from = 2024-01-01\n')
    )
    extract = _extract(tmp_path, [(1, "2023-12-31", "5"), (2, "2024-01-01", "5")])
    out = tmp_path / "out"
    assert _cli("run", extract, "--out", out, "--policy", policy).exit_code == 0
    rejects = pd.read_parquet(out / "rejects.parquet")
    assert rejects[["source_row", "column", "error_code", "value"]].values.tolist() == [
        [1, "service_date", "NO_POLICY_IN_FORCE", "2023-12-31"]
    ]
    assert pd.read_parquet(out / "results.parquet")["claim_id"].tolist() == ["C2"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (("approval_months = 12", "approval_months = 0"),
         "key 'versions[1].approval_months': missing, or not a whole number from 1 to 120"),
        (("oral_max_mg_per_unit = 20.0", "oral_max_mg_per_unit = \"20\""),
         "key 'versions[1].oral_max_mg_per_unit': missing, or not a number > 0 and at most 100,000"),
        # every number has a sane range: past it, an approval end would leave the calendar
        (("approval_months = 12", "approval_months = 100000"),
         "key 'versions[1].approval_months': missing, or not a whole number from 1 to 120"),
        (("approval_months = 12", "approval_months = 100000000"),
         "key 'versions[1].approval_months': missing, or not a whole number from 1 to 120"),
        (("oral_pediatric_age = 12", "oral_pediatric_age = 1200"),
         "key 'versions[1].oral_pediatric_age': missing, or not a whole number from 0 to 130"),
        (("intrathecal_max_mg_per_ml = 2.0", "intrathecal_max_mg_per_ml = 1e300"),
         "key 'versions[1].intrathecal_max_mg_per_ml': missing, or not a number > 0 and at most"),
        # an integer too large for a float is refused, not an OverflowError
        (("oral_max_mg_per_unit = 20.0", "oral_max_mg_per_unit = 9" + "0" * 400),
         "key 'versions[1].oral_max_mg_per_unit': missing, or not a number > 0 and at most"),
        (('route = "oral", strength = 10', 'route = "oral", strength = 1' + "0" * 400),
         "key 'versions[1].commercial_strengths[1].strength': must be a number > 0, at most"),
        # a TOML date-time is not a date
        (('version = "2024.1"\n', 'version = "2024.1"\neffective_to = 2025-06-30T10:00:00Z\n'),
         "key 'versions[1].effective_to': must be a date, YYYY-MM-DD"),
        (('version = "2024.1"\n', 'version = "2024.1"\neffective_from = 2025-06-30T10:00:00\n'),
         "key 'versions[1].effective_from': must be a date, YYYY-MM-DD"),
        # a version key at the top level would silently do nothing
        (('title = ', 'oral_max_mg_per_unit = 25.0\ntitle = '),
         "key 'oral_max_mg_per_unit': not a top-level policy key; expected policy_id, title, versions"),
        (('title = ', 'effective_from = 2025-01-01\ntitle = '),
         "key 'effective_from': not a top-level policy key"),
        (("approval_months = 12", "approval_months = 12\nrenewal_months = 12"),
         "key 'versions[1].renewal_months': not a policy key"),
        (('"G35",', '"35G",'), "key 'versions[1].spasticity_prefixes': an entry is not an ICD-10-CM code prefix"),
        (('route = "oral", strength = 10', 'route = "rectal", strength = 10'),
         "key 'versions[1].commercial_strengths[1].route': must be oral or intrathecal"),
        (('policy_id = "baclofen-powder"', 'policy_id = "baclofen-powder'), "not a valid UTF-8 TOML file"),
    ],
    ids=["months", "text-limit", "months-huge", "months-wraps", "age", "limit-huge",
         "int-overflow", "strength-overflow", "datetime-to", "datetime-from", "top-level-limit",
         "top-level-date", "unknown-key", "prefix", "route", "syntax"],
)  # fmt: skip
def test_an_invalid_definition_fails_naming_the_key(tmp_path, change, message):
    policy = tmp_path / "policy.toml"
    policy.write_text(SHIPPED.replace(*change, 1))
    result = _cli("run", _extract(tmp_path, [(1, "2024-05-01", "5")]), "--out", tmp_path / "out",
                  "--policy", policy)  # fmt: skip
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith(f"pa-batch: error: {policy}: {message}"), line
    assert nothing_published(tmp_path / "out")


def test_overlapping_versions_fail_naming_both(tmp_path):
    policy = _two_versions(tmp_path)
    policy.write_text(
        policy.read_text().replace("effective_from = 2025-07-01", "effective_from = 2025-06-30")
    )
    result = _cli("run", _extract(tmp_path, [(1, "2024-05-01", "5")]), "--out", tmp_path / "out",
                  "--policy", policy)  # fmt: skip
    assert result.exit_code == 1
    assert "versions '2024.1' and '2025.2' are both in force on some dates" in result.stderr


def test_two_versions_of_one_name_fail_naming_the_second(tmp_path):
    policy = _two_versions(tmp_path)
    policy.write_text(policy.read_text().replace('version = "2025.2"', 'version = "2024.1"'))
    result = _cli("run", _extract(tmp_path, [(1, "2024-05-01", "5")]), "--out", tmp_path / "out",
                  "--policy", policy)  # fmt: skip
    assert result.exit_code == 1, result.output
    assert result.stderr.strip() == (
        f"pa-batch: error: {policy}: key 'versions[2].version': '2024.1' names an earlier "
        "version too"
    )


def test_a_definition_with_a_byte_order_mark_is_read(tmp_path):
    policy = tmp_path / "policy.toml"
    policy.write_bytes(b"\xef\xbb\xbf" + SHIPPED.encode("utf-8"))
    out = tmp_path / "out"
    result = _cli(
        "run", _extract(tmp_path, [(1, "2024-05-01", "5")]), "--out", out, "--policy", policy
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["counts"]["approved"] == 1


def test_a_policy_change_gives_exactly_the_expected_diff(tmp_path):
    """Raising the oral limit to 25 mg from 2025-07-01 approves the 22 mg line after it only."""
    extract = _extract(
        tmp_path,
        [
            (1, "2025-06-30", "22"),
            (2, "2025-07-01", "22"),
            (3, "2025-07-01", "26"),
            (4, "2025-08-01", "5"),
        ],
    )
    out = tmp_path / "out"
    assert _cli("run", extract, "--out", out, "--run-id", "today").exit_code == 0
    assert _cli("run", extract, "--out", out, "--run-id", "raised",
                "--policy", _two_versions(tmp_path)).exit_code == 0  # fmt: skip
    result = _cli("diff", "today", "raised", "--in", out, "--out", tmp_path / "diff.csv")
    assert result.exit_code == 0
    assert "denied \u2192 approved: 1" in result.output
    diff = pd.read_csv(tmp_path / "diff.csv", dtype="str", keep_default_na=False)
    assert diff[["claim_id", "service_date", "old_decision", "new_decision", "old_reasons",
                 "new_reasons"]].values.tolist() == [
        ["C2", "2025-07-01", "denied", "approved", "ORAL_DOSE_EXCEEDS_LIMIT", ""],
    ]  # fmt: skip


# --- pa-batch policy show / check --------------------------------------------------------


def test_policy_show_prints_the_shipped_definition_a_run_reads():
    result = _cli("policy", "show")
    assert result.exit_code == 0
    assert result.stdout == SHIPPED


def test_policy_check_lists_each_version_with_its_terms(tmp_path):
    policy = _two_versions(tmp_path, second_limit=25)
    result = _cli("policy", "check", policy)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"{policy}: a valid policy definition (sha256 ")
    assert lines[2].startswith("2 versions;")
    assert lines[3].startswith("  2024.1: open to 2025-06-30; oral at most 20 mg per unit")
    assert lines[4].startswith("  2025.2: 2025-07-01 to open; oral at most 25 mg per unit")
    assert (
        "approval 12 months; pediatric advisories under 12 (oral) and 4 (intrathecal)" in lines[4]
    )


def test_a_copy_of_policy_show_checks_and_runs_like_the_shipped_one(tmp_path):
    copy = tmp_path / "mine.toml"
    copy.write_text(_cli("policy", "show").stdout)
    assert _cli("policy", "check", copy).exit_code == 0
    extract = _extract(tmp_path, [(1, "2024-05-01", "5")])
    shipped = _cli("run", extract, "--out", tmp_path / "a")
    edited = _cli("run", extract, "--out", tmp_path / "b", "--policy", copy)
    assert shipped.exit_code == edited.exit_code == 0
    read = [pd.read_parquet(tmp_path / out / "results.parquet") for out in ("a", "b")]
    assert list(read[0]["decision"]) == list(read[1]["decision"]) == ["approved"]


@pytest.mark.parametrize(
    "edit, message",
    [
        (("oral_max_mg_per_unit = 20.0", "oral_max_mg_per_unit = 0"),
         "key 'versions[1].oral_max_mg_per_unit': missing, or not a number > 0"),
        (('version = "2024.1"', 'version = "2024.1"\nrenewal_months = 6'),
         "key 'versions[1].renewal_months': not a policy key"),
    ],
)  # fmt: skip
def test_policy_check_fails_in_one_line_naming_the_key_and_runs_nothing(tmp_path, edit, message):
    policy = tmp_path / "policy.toml"
    policy.write_text(SHIPPED.replace(*edit))
    result = _cli("policy", "check", policy)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith(f"pa-batch: error: {policy}: {message}")
    assert not (tmp_path / ".pa-batch").exists()
