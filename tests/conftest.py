"""Shared fixtures: run the real CLI on small inputs and read what it committed.

A test that takes the ``engine`` fixture (or a module fixture that takes ``module_engine``)
runs once per engine: in-process, and on a real two-worker Dask ``LocalCluster`` started once
for the session. Both must commit the same outcomes, byte for byte.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import FAST_PROFILE, HEADER, Run, S3Bucket, held_port
from hypothesis import settings
from typer.testing import CliRunner

from pa_batch.cli import app

ENGINES = ("local", "dask")

settings.register_profile(FAST_PROFILE, max_examples=20)


def pytest_collection_modifyitems(items) -> None:
    """A test on the dask engine is marked ``dask`` (make test-fast leaves those out)."""
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        on_dask = "dask" in (params.get("engine"), params.get("module_engine"))
        if on_dask or "dask_scheduler" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.dask)


@pytest.fixture(scope="session")
def dask_scheduler():
    """A real Dask cluster of two worker processes, for the whole session."""
    from dask.distributed import LocalCluster

    from pa_batch.runner.engines import LOCAL_DASHBOARD

    with (
        held_port(8787),
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=LOCAL_DASHBOARD
        ) as cluster,
    ):
        yield cluster.scheduler_address


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """A real S3 API server (moto's) on a free loopback port, for the session."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no request log on the console
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3(s3_endpoint, monkeypatch) -> S3Bucket:
    """A new, empty bucket on the session's S3 server, reached through the standard AWS
    variables (for this process and the processes it starts); its ``url(key)``, ``put``."""
    for name, value in {
        "AWS_ENDPOINT_URL": s3_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    return S3Bucket.create()


def _engine_args(name: str, request) -> list[str]:
    if name == "local":
        return []
    return ["--engine", "dask", "--scheduler", request.getfixturevalue("dask_scheduler")]


@pytest.fixture(params=ENGINES)
def engine(request) -> list[str]:
    """The command-line arguments selecting each engine in turn."""
    return _engine_args(request.param, request)


@pytest.fixture(scope="module", params=ENGINES)
def module_engine(request) -> list[str]:
    return _engine_args(request.param, request)


@pytest.fixture
def run_cli(tmp_path, request):
    """Invoke ``pa-batch run`` in-process via typer's CliRunner (on each engine when the test
    takes the ``engine`` fixture)."""
    engine_args = request.getfixturevalue("engine") if "engine" in request.fixturenames else []

    def invoke(*args: str | Path, out: Path | None = None) -> Run:
        out = out or tmp_path / "out"
        runner = CliRunner()
        result = runner.invoke(app, ["run", *map(str, args), "--out", str(out), *engine_args])
        return Run(out, result.exit_code, result.output, result.stdout, result.stderr)

    return invoke


@pytest.fixture
def write_csv(tmp_path):
    """Write CSV text to a file (header defaults to the common claim columns)."""

    counter = iter(range(10**6))

    def write(rows: list[str] | str, header: str = HEADER, name: str | None = None) -> Path:
        body = rows if isinstance(rows, str) else "\n".join(rows) + "\n"
        path = tmp_path / (name or f"extract_{next(counter)}.csv")
        path.write_text(f"{header}\n{body}" if header else body, encoding="utf-8")
        return path

    return write
