"""Airflow: the nightly job two ways, a BashOperator running the command and a
PythonOperator calling the library. Importable without Airflow (the DAG is built only when
Airflow is there), so the tests run the command line and the callable for real.

Retries are safe: the run id is Airflow's own (``{{ run_id }}``), and a retry of a run that
already committed with the same inputs writes nothing and ends as that run did. Exit 75
(transient) fails the task so that Airflow retries it; exit 1 (the input is wrong) and 3
(committed, over the reject threshold) should alert, not retry: ``retries`` suits 75, and the
BashOperator's ``skip_on_exit_code`` is left alone so 3 stays a failure a person looks at.
"""

from __future__ import annotations

import os
from datetime import datetime

EXTRACT = os.environ.get("PA_BATCH_EXTRACT", "/data/claims/incoming")
OUT = os.environ.get("PA_BATCH_OUT", "/data/pa-batch/out")

# The BashOperator's command: JSON lines on stdout, the last one run_finished, which
# Airflow pushes to XCom (do_xcom_push): status, exit_code, counts and the summary's path.
BASH_COMMAND = (
    'pa-batch run "$PA_BATCH_EXTRACT" --out "$PA_BATCH_OUT" --log-format json '
    '--run-id "$PA_BATCH_RUN_ID" --max-reject-rate 0.05'
)


def bash_env(run_id: str, extract: str = EXTRACT, out: str = OUT) -> dict[str, str]:
    """The BashOperator's environment (Airflow renders ``run_id`` from ``{{ run_id }}``)."""
    return {"PA_BATCH_EXTRACT": extract, "PA_BATCH_OUT": out, "PA_BATCH_RUN_ID": run_id}


def decide_claims(run_id: str, extract: str = EXTRACT, out: str = OUT) -> dict:
    """The PythonOperator's callable: a run through the library. Its return value goes to
    XCom; a RunError fails the task (a transient one is worth Airflow's retry)."""
    import pa_batch

    result = pa_batch.run([extract], out, run_id=run_id, max_reject_rate=0.05)
    if result.exit_code == 3:  # committed, but too many rejects: a person must look
        raise RuntimeError(f"reject rate over the limit in run {result.run_id}")
    return {
        "run_id": result.run_id,
        "status": result.status,
        "counts": result.summary["counts"],
        "summary": str(result.run_dir / "summary.json"),
    }


def make_dag():
    """The DAG, when Airflow is installed."""
    from airflow import DAG
    from airflow.operators.bash import BashOperator
    from airflow.operators.python import PythonOperator

    with DAG(
        "pa_batch_nightly",
        start_date=datetime(2024, 1, 1),
        schedule="30 2 * * *",
        catchup=False,
        default_args={"retries": 3},
    ) as dag:
        BashOperator(
            task_id="decide_with_the_command",
            bash_command=BASH_COMMAND,
            env=bash_env("{{ run_id }}"),
            append_env=True,
            do_xcom_push=True,
        )
        PythonOperator(
            task_id="decide_with_the_library",
            python_callable=decide_claims,
            op_kwargs={"run_id": "{{ run_id }}-library"},
        )
    return dag


try:  # Airflow discovers DAGs by importing this file
    dag = make_dag()
except ImportError:
    dag = None
