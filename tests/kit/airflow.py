"""Airflow for the tests: a throwaway AIRFLOW_HOME, a DagBag parsed in a clean subprocess, the
Airflow Variables that hold a task's secrets, and a REST API client that keeps every status code.

`throwaway_home()` must run before anything imports Airflow (conftest files call it at import,
before the test modules are imported), so nothing is written to `~/airflow`. Building DAGs,
operators and pods and parsing DAG files need no metadata database.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datakit_orchestration.plan import TaskPlan, TenantPlan

_home: Path | None = None


def _home_folder() -> Path:
    """A temporary folder for this process, removed at exit; the same one on every call."""
    global _home
    if _home is None:
        _home = Path(tempfile.mkdtemp(prefix="datakit-airflow-home-"))
        atexit.register(shutil.rmtree, _home, ignore_errors=True)
    return _home


def throwaway_home() -> Path:
    """Make a temporary folder this process's AIRFLOW_HOME (in `os.environ`, with the example
    DAGs off); the same folder on every call."""
    os.environ["AIRFLOW_HOME"] = str(_home_folder())
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    return _home_folder()


_DAGBAG = """
import json
from airflow.dag_processing.dagbag import DagBag

bag = DagBag(dag_folder={folder!r})
print(json.dumps({{
    "import_errors": bag.import_errors,
    "dags": {{
        dag.dag_id: {{t.task_id: type(t).__name__ for t in dag.tasks}} for dag in bag.dags.values()
    }},
}}))
"""


def dagbag(folder: Path, runtime: str | None) -> dict[str, Any]:
    """Parse `folder` as Airflow's DAG processor would, in a clean process (a throwaway
    AIRFLOW_HOME) with only `DATAKIT_RUNTIME` chosen: import errors by file, and each DAG's task
    ids → operator class."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAKIT_", "AIRFLOW_VAR_"))}
    env |= {"AIRFLOW_HOME": str(_home_folder()), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    if runtime is not None:
        env["DATAKIT_RUNTIME"] = runtime
    proc = subprocess.run(
        [sys.executable, "-c", _DAGBAG.format(folder=str(folder))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def secret_values(plan: TenantPlan, task: TaskPlan) -> dict[str, str]:
    """A distinct fake value per secret of `task`, keyed by its `AIRFLOW_VAR_…` variable."""
    from datakit_orchestration.adapters.secrets import variable_name  # imports Airflow

    return {
        f"AIRFLOW_VAR_{variable_name(plan.tenant, s.secret).upper()}": f"s3cr3t-{s.env_var}-value"
        for s in task.secrets
    }


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any  # the decoded JSON, or the text when it is not JSON


@dataclass(frozen=True)
class RestApi:
    """Airflow's REST API at `url`, as the user whose JWT is `token` (anonymous without one)."""

    url: str
    token: str | None = None

    def call(self, method: str, path: str, body: Any = None) -> Reply:
        """`method path` with `body` as JSON; an error status is returned, not raised."""
        request = urllib.request.Request(
            self.url + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, raw = error.code, error.read()
        try:
            return Reply(status, json.loads(raw))
        except ValueError:
            return Reply(status, raw.decode(errors="replace"))

    def get(self, path: str) -> Reply:
        return self.call("GET", path)
