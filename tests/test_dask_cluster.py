"""The dask engine against a real cluster in trouble: a dashboard port someone else holds,
an address that is no address, and workers that die holding the reference data."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pandas as pd
import pytest
from helpers import HEADER, held_port
from typer.testing import CliRunner

from pa_batch.cli import app
from pa_batch.runner import engines

pytestmark = pytest.mark.dask

LINES = [
    f"C{n},1,M1,1980-01-02,2024-05-01,00000-0000-00,BACLOFEN POWDER,oral,{mg},mg,G35"
    for n, mg in enumerate([5, 25, 10, 15] * 25)
]


def _extract(tmp_path):
    path = tmp_path / "claims.csv"
    path.write_text(HEADER + "\n" + "\n".join(LINES) + "\n")
    return path


def test_a_run_starts_its_own_cluster_while_port_8787_is_taken(tmp_path):
    extract = _extract(tmp_path)
    with held_port(8787):
        finished = subprocess.run(
            [sys.executable, "-m", "pa_batch", "run", str(extract), "--out", str(tmp_path / "out"),
             "--engine", "dask"],
            capture_output=True, text=True, cwd=tmp_path, timeout=300,
        )  # fmt: skip
    assert finished.returncode == 0, finished.stderr
    assert finished.stderr == "", finished.stderr  # no UserWarning about the port, nothing
    assert "committed 100 records" in finished.stdout


@pytest.mark.parametrize(
    "address",
    ["foo", "inproc://x", "tls://127.0.0.1:8786", "tcp://host:99999", "tcp://:1", "a b:1"],
)
def test_a_malformed_scheduler_address_is_a_usage_error(tmp_path, address):
    result = CliRunner().invoke(
        app, ["run", str(_extract(tmp_path)), "--out", str(tmp_path / "out"), "--engine", "dask",
              "--scheduler", address],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    assert "not a Dask scheduler address" in result.output
    assert "internal error" not in result.output and not (tmp_path / "out").exists()


@pytest.fixture
def cluster():
    """A cluster of its own (workers are killed here): two worker processes under nannies,
    which start a new worker when one dies."""
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=engines.LOCAL_DASHBOARD
    ) as local:
        yield local


def _kill_workers(client, how_many: int) -> None:
    """SIGKILL ``how_many`` worker processes, one after the other, each time waiting for its
    nanny to bring a fresh worker up (one that holds no scattered data)."""
    for address in list(client.scheduler_info()["workers"])[:how_many]:
        with contextlib.suppress(Exception):  # the worker dies before it can answer
            client.run(lambda: os.kill(os.getpid(), 9), workers=[address])
        client.wait_for_workers(2, timeout=120)


@pytest.mark.parametrize("lost", ["both-at-once", "one-after-the-other"])
def test_workers_that_die_holding_the_reference_data_are_survived(
    tmp_path, cluster, monkeypatch, lost
):
    original = engines.DaskEngine._scatter
    scattered = []

    def scatter_then_lose_the_workers(self):
        original(self)
        scattered.append(1)
        if len(scattered) > 1:
            return
        if lost == "both-at-once":
            with contextlib.suppress(Exception):
                self.client.run(lambda: os.kill(os.getpid(), 9))
            self.client.wait_for_workers(2, timeout=120)
        else:
            _kill_workers(self.client, 2)

    monkeypatch.setattr(engines.DaskEngine, "_scatter", scatter_then_lose_the_workers)
    extract = _extract(tmp_path)
    result = CliRunner().invoke(
        app, ["run", str(extract), "--out", str(tmp_path / "dask"), "--engine", "dask",
              "--scheduler", cluster.scheduler_address],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert len(scattered) >= 2, "the reference data was never scattered again"
    local = CliRunner().invoke(app, ["run", str(extract), "--out", str(tmp_path / "local")])
    assert local.exit_code == 0
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "dask" / "results.parquet"),
        pd.read_parquet(tmp_path / "local" / "results.parquet"),
    )
