"""A throwaway AIRFLOW_HOME before a test imports Airflow (the Variable names of the demo
tenant's secrets), so nothing is written to `~/airflow`."""

from __future__ import annotations

from tests.kit import airflow

airflow.throwaway_home()
