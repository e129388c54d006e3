"""Print the declared floors of pa_batch's dependencies as exact pins (``numpy==2.0``), for a
venv of the oldest versions pyproject.toml allows (``make test-floors``): the floors are
claims, and this is how they are checked."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pinned_floors() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    pins = []
    for requirement in project["dependencies"]:
        match = re.fullmatch(
            r"\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*", requirement
        )
        if match is None:
            raise SystemExit(f"no floor to pin in {requirement!r}")
        pins.append(f"{match.group(1)}=={match.group(2)}")
    return pins


if __name__ == "__main__":
    print(" ".join(pinned_floors()))
