"""A throwaway AIRFLOW_HOME for this process, set before the test module imports Airflow
(through `datakit_orchestration.adapters.secrets`), so nothing is written to `~/airflow`. The
Airflow that runs the DAG is a subprocess with its own home (see `test_airflow_dag`)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

if "AIRFLOW_HOME" not in os.environ:
    AIRFLOW_HOME = tempfile.mkdtemp(prefix="datakit-e2e-airflow-home-")
    atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)
    os.environ["AIRFLOW_HOME"] = AIRFLOW_HOME
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
