"""summary.html: one self-contained page, opened in a real headless Chromium; every chart is
there and every number it shows equals summary.json.

Chromium is Debian's `chromium` package, which .ci/run installs; the browser tests skip only
on a machine where no Chromium binary exists at all, and say so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from helpers import SAMPLE_DATA
from typer.testing import CliRunner

from pa_batch.cli import app

CHARTS = {"outcomes", "months", "reasons", "routes", "errors", "advisories"}
CHROMIUM = next(
    (
        found
        for name in ("chromium", "chromium-browser", "google-chrome")
        if (found := shutil.which(name))
    ),
    None,
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no Chromium binary on this machine (.ci/run installs Debian's chromium package)",
)


@pytest.fixture(scope="module")
def committed(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("report") / "out"
    sample = SAMPLE_DATA / "claims.csv"
    result = CliRunner().invoke(app, ["run", str(sample), str(sample), "--out", str(out),
                                      "--reference-dir", str(SAMPLE_DATA / "reference")])  # fmt: skip
    assert result.exit_code == 0, result.output
    return out


def _chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    profile = cwd / "chromium-profile"
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={profile}", *args],
        capture_output=True, text=True, timeout=120, cwd=cwd,
    )  # fmt: skip


class _Collector(HTMLParser):
    """data-count cells (their text, or data-value), charts and their bars, scripts, links."""

    def __init__(self):
        super().__init__()
        self.counts: dict[str, str] = {}
        self.charts: dict[str, int] = {}
        self.external: list[str] = []
        self._open: str | None = None
        self._chart: str | None = None

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if tag in ("script", "link", "iframe", "img"):
            self.external.append(tag)
        for name in ("src", "href"):
            if attributes.get(name):
                self.external.append(attributes[name])
        if tag == "svg" and "data-chart" in attributes:
            self._chart = attributes["data-chart"]
            self.charts[self._chart] = 0
        if tag == "rect" and self._chart:
            self.charts[self._chart] += 1
        if "data-count" in attributes:
            if "data-value" in attributes:
                self.counts[attributes["data-count"]] = attributes["data-value"]
            else:
                self._open = attributes["data-count"]

    def handle_endtag(self, tag):
        if tag == "svg":
            self._chart = None

    def handle_data(self, data):
        if self._open:
            self.counts[self._open] = data.strip()
            self._open = None


@pytest.mark.browser
@needs_chromium
def test_summary_html_renders_in_chromium_with_every_chart_and_the_numbers_of_summary_json(
    committed, tmp_path
):
    page = (committed / "summary.html").resolve()
    shot = tmp_path / "summary.png"
    rendered = _chromium(
        "--window-size=1200,2400", f"--screenshot={shot}", page.as_uri(), cwd=tmp_path
    )
    assert rendered.returncode == 0, rendered.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000

    dom = _chromium("--dump-dom", page.as_uri(), cwd=tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    seen = _Collector()
    seen.feed(dom.stdout)
    assert seen.external == []  # nothing to fetch: it opens offline
    assert set(seen.charts) == CHARTS
    assert all(bars > 0 for bars in seen.charts.values()), seen.charts

    summary = json.loads((committed / "summary.json").read_text())
    number = lambda text: int(str(text).replace(",", ""))  # noqa: E731
    shown = {key: number(value) for key, value in seen.counts.items()}
    expected = {f"outcome:{o}": summary["counts"][o] for o in
                ("approved", "denied", "investigational", "out_of_scope", "rejected")}  # fmt: skip
    expected["rows_read"] = summary["counts"]["rows_read"]
    for index, listed in enumerate(summary["inputs"]):
        expected |= {f"input:{index}:{o}": n for o, n in listed["counts"].items()}
    for month, decided in summary["decisions_by_service_month"].items():
        expected |= {f"month:{month}:{d}": n for d, n in decided.items()}
        expected |= {f"month-table:{month}:{d}": n for d, n in decided.items()}
    for column, found in summary["unmapped_spellings"].items():
        expected |= {f"spelling:{column}:{s}": n for s, n in found["spellings"].items()}
    expected |= {f"powder_line:{k}": n for k, n in summary["rejected_by_powder_line"].items()}
    assert shown == expected
    assert f"Records read {summary['counts']['rows_read']:,} =" in " ".join(dom.stdout.split())


def test_summary_html_is_self_contained_and_carries_no_member_data(committed):
    html = (committed / "summary.html").read_text()
    assert not re.search(r"<script|<link|@import|url\(|src=|href=", html)
    assert re.findall(r"https?://[^\"' ]+", html) == ["http://www.w3.org/2000/svg"] * html.count(
        "http://www.w3.org/2000/svg"
    )
    for member_value in ("RX24000008", "M97559405", "1966-01-20"):  # in the sample's results
        assert member_value not in html
