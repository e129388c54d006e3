"""Dagster: the night's decisions as an asset, through the library; its metadata comes from
the run's summary. Importable without Dagster (the asset is defined only when Dagster is
there), so the tests call the asset's body for real.

The run id is Dagster's own run id: a re-execution of a run that committed writes nothing
and reports the same run. A ``RunError`` of category ``transient`` is worth a retry
(``RetryPolicy``); ``input`` is not.
"""

from __future__ import annotations

import os

EXTRACT = os.environ.get("PA_BATCH_EXTRACT", "/data/claims/incoming")
OUT = os.environ.get("PA_BATCH_OUT", "/data/pa-batch/out")


def decide_claims(run_id: str, extract: str = EXTRACT, out: str = OUT) -> dict:
    """The asset's body: decide the night's claims; return the metadata Dagster shows."""
    import pa_batch

    result = pa_batch.run([extract], out, run_id=run_id)
    counts = result.summary["counts"]
    return {
        "run_id": result.run_id,
        "status": result.status,
        "rows_read": counts["rows_read"],
        **{outcome: counts[outcome] for outcome in ("approved", "denied", "investigational")},
        "rejected": counts["rejected"],
        "summary": str(result.run_dir / "summary.json"),
        "already_committed": result.already_committed,
    }


def make_definitions():
    """The Dagster definitions, when Dagster is installed."""
    import dagster as dg

    @dg.asset(retry_policy=dg.RetryPolicy(max_retries=3, delay=900))
    def nightly_decisions(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        return dg.MaterializeResult(metadata=decide_claims(context.run_id))

    return dg.Definitions(assets=[nightly_decisions])


try:
    defs = make_definitions()
except ImportError:
    defs = None
