"""The policy as data (docs/contract.md §1): versioned definitions in a TOML file, each in
force over a range of service dates, validated on load; and the outcome names.

The shipped definition (``policy/data/baclofen-powder.toml``) is today's policy, open-ended;
``--policy FILE`` replaces it. A problem fails the run naming the file and the key.
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Iterator
from datetime import date, datetime
from importlib import resources
from typing import Any, Final, Protocol

import pandas as pd

from pa_batch.core.model import CommercialStrength, PolicyDefinition, PolicyVersion
from pa_batch.errors import RunError

POLICY_ID: Final = "baclofen-powder"
SHIPPED_POLICY: Final = "baclofen-powder.toml"


_PREFIX = re.compile(r"[A-Z][0-9][0-9A-Z]{0,5}")
TOP_LEVEL_KEYS: Final = ("policy_id", "title", "versions")
# The sane range of every number a definition holds: a limit, a window or an age outside it
# is a typing error (an extra digit), never a policy.
MAX_LIMIT: Final = 100_000  # mg per unit, mg/mL, and a listed commercial strength
MAX_APPROVAL_MONTHS: Final = 120
MAX_AGE: Final = 130
VERSION_KEYS: Final = {
    "version": "text, unique among the versions",
    "effective_from": "date YYYY-MM-DD (optional)",
    "effective_to": "date YYYY-MM-DD (optional)",
    "oral_max_mg_per_unit": f"number > 0, at most {MAX_LIMIT:,}",
    "intrathecal_max_mg_per_ml": f"number > 0, at most {MAX_LIMIT:,}",
    "approval_months": f"whole number from 1 to {MAX_APPROVAL_MONTHS}",
    "oral_pediatric_age": f"whole number from 0 to {MAX_AGE}",
    "intrathecal_pediatric_age": f"whole number from 0 to {MAX_AGE}",
    "spasticity_prefixes": "list of ICD-10-CM code prefixes",
    "commercial_strengths": f"list of {{route, strength, strength_unit}}, strength > 0, "
    f"at most {MAX_LIMIT:,}",
}


class Place(Protocol):
    """A file or directory the policy room reads: a local ``Path``, or an object store's
    (``io.storage.StorePath``, which answers the same questions through pyarrow.fs)."""

    @property
    def name(self) -> str: ...
    def exists(self) -> bool: ...
    def is_dir(self) -> bool: ...
    def iterdir(self) -> Iterator[Place]: ...
    def read_bytes(self) -> bytes: ...
    def __truediv__(self, name: str) -> Place: ...


def load_policy(path: Place | None = None) -> PolicyDefinition:
    """The definition in ``path``, or the shipped one; invalid: RunError naming file and key."""
    if path is None:
        payload = resources.files("pa_batch.policy.data").joinpath(SHIPPED_POLICY).read_bytes()
        label, origin = SHIPPED_POLICY, "shipped"
    else:
        try:
            payload = path.read_bytes()
        except OSError as error:
            raise RunError(f"cannot read policy file ({error.strerror})", file=str(path)) from None
        label = origin = str(path)
    try:
        text = payload.decode("utf-8")
        data = tomllib.loads(text.removeprefix("\ufeff"))  # a byte-order mark is no content
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        where = f" ({error.args[0]})" if isinstance(error, tomllib.TOMLDecodeError) else ""
        raise RunError(f"not a valid UTF-8 TOML file{where}", file=label) from None
    return PolicyDefinition(
        policy_id=_text(data, "policy_id", label),
        title=_text(data, "title", label),
        versions=_versions(data, label),
        origin=origin,
        sha256=hashlib.sha256(payload).hexdigest(),
        text=text,
    )


def _fail(label: str, key: str, problem: str) -> RunError:
    return RunError(f"key '{key}': {problem}", file=label)


def _text(table: dict, key: str, label: str, where: str = "") -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(label, where + key, "missing, or not a non-empty text")
    return value.strip()


def _versions(data: dict, label: str) -> tuple[PolicyVersion, ...]:
    unknown = sorted(set(data) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise _fail(
            label,
            unknown[0],
            "not a top-level policy key; expected "
            + ", ".join(TOP_LEVEL_KEYS)
            + " (version keys belong in a [[versions]] table)",
        )
    if data.get("policy_id") != POLICY_ID:
        raise _fail(label, "policy_id", f"must be '{POLICY_ID}'")
    tables = data.get("versions")
    if not isinstance(tables, list) or not tables:
        raise _fail(label, "versions", "at least one [[versions]] table is needed")
    # keys name a [[versions]] table and a list entry as a reader counts them: from 1
    versions = tuple(
        _version(table, label, f"versions[{number}].")
        for number, table in enumerate(tables, start=1)
    )
    names = [v.version for v in versions]
    for i, name in enumerate(names):
        if name in names[:i]:
            # results name the version that decided a line: two of one name are one too many
            raise _fail(
                label, f"versions[{i + 1}].version", f"'{name}' names an earlier version too"
            )
    _check_no_overlap(versions, label)
    return versions


def _version(table: Any, label: str, where: str) -> PolicyVersion:
    if not isinstance(table, dict):
        raise _fail(label, where.rstrip("."), "must be a table")
    unknown = sorted(set(table) - set(VERSION_KEYS))
    if unknown:
        raise _fail(label, where + unknown[0], "not a policy key; expected one of "
                    + ", ".join(VERSION_KEYS))  # fmt: skip
    start = _date(table, "effective_from", label, where)
    end = _date(table, "effective_to", label, where)
    if start and end and end < start:
        raise _fail(label, where + "effective_to", "before effective_from")
    return PolicyVersion(
        version=_text(table, "version", label, where),
        effective_from=start,
        effective_to=end,
        oral_max_mg_per_unit=_number(table, "oral_max_mg_per_unit", label, where),
        intrathecal_max_mg_per_ml=_number(table, "intrathecal_max_mg_per_ml", label, where),
        approval_months=_whole(
            table, "approval_months", label, where, least=1, most=MAX_APPROVAL_MONTHS
        ),
        oral_pediatric_age=_whole(table, "oral_pediatric_age", label, where, least=0, most=MAX_AGE),
        intrathecal_pediatric_age=_whole(
            table, "intrathecal_pediatric_age", label, where, least=0, most=MAX_AGE
        ),
        spasticity_prefixes=_prefixes(table, label, where),
        commercial_strengths=_strengths(table, label, where),
    )


def _date(table: dict, key: str, label: str, where: str) -> date | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, date) and not isinstance(value, datetime):  # a date, not a time
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise _fail(label, where + key, "must be a date, YYYY-MM-DD")


def _is_limit(value: Any) -> bool:
    """A number > 0 and at most MAX_LIMIT (compared before any conversion: an integer too
    large for a float is refused, not an OverflowError)."""
    return not isinstance(value, bool) and isinstance(value, int | float) and 0 < value <= MAX_LIMIT


def _number(table: dict, key: str, label: str, where: str) -> float:
    value = table.get(key)
    if not isinstance(value, int | float) or not _is_limit(value):
        raise _fail(label, where + key, f"missing, or not a number > 0 and at most {MAX_LIMIT:,}")
    return float(value)


def _whole(table: dict, key: str, label: str, where: str, *, least: int, most: int) -> int:
    value = table.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not least <= value <= most:
        raise _fail(label, where + key, f"missing, or not a whole number from {least} to {most}")
    return value


def _prefixes(table: dict, label: str, where: str) -> tuple[str, ...]:
    key = where + "spasticity_prefixes"
    values = table.get("spasticity_prefixes")
    if not isinstance(values, list) or not values:
        raise _fail(label, key, "missing, or not a non-empty list of code prefixes")
    prefixes = []
    for value in values:
        code = str(value).strip().upper().replace(".", "")
        if not isinstance(value, str) or not _PREFIX.fullmatch(code):
            raise _fail(label, key, "an entry is not an ICD-10-CM code prefix")
        prefixes.append(code)
    return tuple(dict.fromkeys(prefixes))


def _strengths(table: dict, label: str, where: str) -> tuple[CommercialStrength, ...]:
    from pa_batch.core import normalize

    key = where + "commercial_strengths"
    values = table.get("commercial_strengths")
    if not isinstance(values, list):
        raise _fail(label, key, "missing, or not a list of {route, strength, strength_unit}")
    strengths = []
    for i, value in enumerate(values):
        entry = f"{key}[{i + 1}]"
        if not isinstance(value, dict) or set(value) != {"route", "strength", "strength_unit"}:
            raise _fail(label, entry, "must be {route, strength, strength_unit}")
        route = normalize.ROUTE_SYNONYMS.get(str(value["route"]).strip().lower())
        if route not in ("oral", "intrathecal"):
            raise _fail(label, entry + ".route", "must be oral or intrathecal")
        if not _is_limit(value["strength"]):
            raise _fail(label, entry + ".strength", f"must be a number > 0, at most {MAX_LIMIT:,}")
        unit = normalize.unit_key(pd.Series([str(value["strength_unit"])], dtype="str"))[0]
        if unit not in normalize.STRENGTH_UNITS:
            raise _fail(label, entry + ".strength_unit", "not a known unit")
        strengths.append(
            CommercialStrength(route, float(value["strength"]), str(value["strength_unit"]))
        )
    return tuple(strengths)


def _check_no_overlap(versions: tuple[PolicyVersion, ...], label: str) -> None:
    ordered = sorted(versions, key=lambda v: v.effective_from or date.min)
    for before, after in zip(ordered, ordered[1:], strict=False):
        if (before.effective_to or date.max) >= (after.effective_from or date.min):
            raise _fail(
                label,
                "versions",
                f"versions '{before.version}' and '{after.version}' are both in force on "
                "some dates",
            )


def describe_policy(policy: PolicyDefinition) -> str:
    """What ``policy check`` prints: the definition's versions and their terms, one a line."""
    from pa_batch.core.rules import number_text

    lines = [
        f"{policy.origin}: a valid policy definition (sha256 {policy.sha256[:12]})",
        f"policy {policy.policy_id}: {policy.title}",
        f"{len(policy.versions)} version{'s' if len(policy.versions) > 1 else ''}; a line is "
        "decided under the one in force on its service date:",
    ]
    for version in policy.versions:
        start = version.effective_from.isoformat() if version.effective_from else "open"
        end = version.effective_to.isoformat() if version.effective_to else "open"
        lines.append(
            f"  {version.version}: {start} to {end}; oral at most "
            f"{number_text(version.oral_max_mg_per_unit)} mg per unit, intrathecal at most "
            f"{number_text(version.intrathecal_max_mg_per_ml)} mg/mL; approval "
            f"{version.approval_months} months; pediatric advisories under "
            f"{version.oral_pediatric_age} (oral) and {version.intrathecal_pediatric_age} "
            f"(intrathecal); {len(version.spasticity_prefixes)} spasticity code prefixes; "
            f"{len(version.commercial_strengths)} commercial strengths"
        )
    return "\n".join(lines)
