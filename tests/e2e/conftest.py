"""A throwaway AIRFLOW_HOME for this process, set before the test module imports Airflow
(through `datakit_orchestration.adapters.secrets`), so nothing is written to `~/airflow`. The
Airflow that runs the DAG is a subprocess with its own home (see `test_airflow_dag`)."""

from __future__ import annotations

from tests.kit import airflow

airflow.throwaway_home()
