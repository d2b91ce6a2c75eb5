"""Helpers for the adapter and DAG tests: the shipped tenants' plans, a DagBag in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from datakit_orchestration.loader import load_tenants
from datakit_orchestration.plan import TaskPlan, TenantPlan, plan_tenant
from tests.unit.orchestration.helpers import ROOT, TENANTS

DAGS = ROOT / "orchestration" / "dags"


def shipped_plans() -> list[TenantPlan]:
    specs, errors = load_tenants(TENANTS)
    assert not errors, errors
    return [plan_tenant(spec) for spec in specs]


def every_task() -> list[Any]:
    """(plan, task) of every task of every shipped tenant, as pytest params named by task."""
    return [
        pytest.param(plan, task, id=f"{plan.tenant}:{task.task_id}")
        for plan in shipped_plans()
        for task in plan.tasks
    ]


def secret_values(plan: TenantPlan, task: TaskPlan) -> dict[str, str]:
    """A distinct fake value per secret of `task`, keyed by its `AIRFLOW_VAR_…` variable."""
    from datakit_orchestration.adapters.secrets import variable_name

    return {
        f"AIRFLOW_VAR_{variable_name(plan.tenant, s.secret).upper()}": f"s3cr3t-{s.env_var}-value"
        for s in task.secrets
    }


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
    """Parse `folder` as Airflow's DAG processor would, in a clean process with only
    `DATAKIT_RUNTIME` chosen: import errors by file, and each DAG's task ids → operator class."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATAKIT_", "AIRFLOW_VAR_"))}
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
