"""Build pa_batch's shipped ICD-10-CM billable-code list from the pinned simple-icd-10-cm
(a development tool: not in the wheel). ``python tools/build_icd10cm_list.py --write``."""

from __future__ import annotations

import sys
from pathlib import Path

from pa_batch.policy.icd10cm import CODE_LIST, EDITION, PACKAGE, PACKAGE_VERSION

ROOT = Path(__file__).resolve().parent.parent


def code_list_from_package() -> str:
    """The shipped list's text, made anew from the installed ``simple-icd-10-cm``."""
    import warnings
    from importlib.metadata import version

    installed = version(PACKAGE)
    if installed != PACKAGE_VERSION:
        raise SystemExit(f"{PACKAGE} {installed} installed; the list is of {PACKAGE_VERSION}")
    # the package loads its data through importlib.resources' legacy read_text, which warns
    # on Python >= 3.11: its deprecation, not ours, and harmless at the pinned version
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import simple_icd_10_cm as code_set
    leaves = sorted(
        code for code in code_set.get_all_codes(with_dots=False) if code_set.is_leaf(code)
    )
    header = (
        f"# {EDITION}: the billable (leaf) codes, upper-case, without dots.\n"
        f"# Generated from {PACKAGE} {PACKAGE_VERSION} by `tools/build_icd10cm_list.py --write`.\n"
    )
    return header + "\n".join(leaves) + "\n"


def main(argv: list[str]) -> int:
    target = ROOT / "pa_batch" / "policy" / "data" / CODE_LIST
    if argv != ["--write"]:
        print("usage: python tools/build_icd10cm_list.py --write", file=sys.stderr)
        return 2
    target.write_text(code_list_from_package(), encoding="ascii")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
