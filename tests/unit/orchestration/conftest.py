"""Airflow for the orchestration tests: a throwaway AIRFLOW_HOME, no database, no examples.

Set before any test module imports Airflow (conftest files are imported first), so nothing is
written to `~/airflow`. The tests build DAGs, operators and pods offline and parse DAG files with
a `DagBag`, none of which needs Airflow's metadata database.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

AIRFLOW_HOME = tempfile.mkdtemp(prefix="datakit-airflow-home-")
atexit.register(shutil.rmtree, AIRFLOW_HOME, ignore_errors=True)
os.environ["AIRFLOW_HOME"] = AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ.pop("DATAKIT_RUNTIME", None)  # tests choose the runtime explicitly
