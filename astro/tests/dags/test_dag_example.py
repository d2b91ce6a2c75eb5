"""The DAG folder of this Astro project: `astro dev pytest` runs this file inside the image, and
`tests/unit/test_astro_project.py` runs it against a staged copy of the project.

Paths are taken from this file's place in the project, so the test reads the same `dags/` and
`include/tenants/` wherever the project sits (`/usr/local/airflow` in the image).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from airflow.dag_processing.dagbag import DagBag

PROJECT = Path(__file__).resolve().parents[2]
DAGS = PROJECT / "dags"
TENANTS = PROJECT / "include" / "tenants"
STAGE_HINT = "run `make astro` (astro/stage.sh) in the repository to stage the tenants and DAGs"


def tenant_names() -> list[str]:
    return sorted(path.stem for path in TENANTS.glob("*.yaml"))


@pytest.fixture(scope="module")
def dagbag() -> DagBag:
    return DagBag(dag_folder=str(DAGS))


def test_the_project_is_staged() -> None:
    assert tenant_names(), f"no tenant files in `{TENANTS}`; {STAGE_HINT}"
    dag_files = sorted(path.stem for path in DAGS.glob("*.py"))
    assert dag_files == tenant_names(), f"DAG files do not match the tenant files; {STAGE_HINT}"


def test_every_dag_file_imports_without_errors(dagbag: DagBag) -> None:
    errors = {os.path.relpath(path, PROJECT): error for path, error in dagbag.import_errors.items()}
    assert not errors, "DAG import errors:\n" + "\n".join(f"{p}: {e}" for p, e in errors.items())


def test_one_dag_per_tenant(dagbag: DagBag) -> None:
    assert sorted(dagbag.dag_ids) == [f"{tenant}__elt" for tenant in tenant_names()]


def test_dags_are_tagged_with_their_tenant(dagbag: DagBag) -> None:
    for tenant in tenant_names():
        dag = dagbag.dags[f"{tenant}__elt"]
        assert f"tenant:{tenant}" in dag.tags, f"{dag.dag_id} has tags {sorted(dag.tags)}"
        assert dag.max_active_runs == 1, f"{dag.dag_id}: runs of one tenant must queue"


def test_runner_tasks_use_the_runtime_of_this_deployment(dagbag: DagBag) -> None:
    runtime = os.environ.get("DATAKIT_RUNTIME", "docker")
    expected = {"docker": "DockerOperator", "kubernetes": "KubernetesPodOperator"}[runtime]
    for dag in dagbag.dags.values():
        operators = {type(task).__name__ for task in dag.tasks}
        assert operators == {expected}, f"{dag.dag_id} under DATAKIT_RUNTIME={runtime}: {operators}"
