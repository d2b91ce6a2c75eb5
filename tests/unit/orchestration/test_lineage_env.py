"""The lineage environment of every runner task: the launching task as the OpenLineage parent,
rendered the same by the Docker and the Kubernetes operator, from the provider's own macros."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest
from airflow.providers.openlineage.plugins import macros as provider_macros

from datakit_contract import env
from datakit_orchestration.adapters.docker import DockerDeployment, docker_task
from datakit_orchestration.adapters.kubernetes import KubernetesDeployment, kubernetes_task
from datakit_orchestration.plan import OPENLINEAGE_URL_VARIABLE, TaskPlan, TenantPlan, lineage_env
from tests.kit.tenants import every_task

LINEAGE_NAMES = {
    env.LINEAGE_PARENT_NAMESPACE,
    env.LINEAGE_PARENT_JOB_NAME,
    env.LINEAGE_PARENT_RUN_ID,
    env.OPENLINEAGE_URL,
}
RECEIVER = "http://127.0.0.1:27100"


def rendered(plan: TenantPlan, task: TaskPlan, context: dict[str, Any]) -> list[dict[str, str]]:
    """The plain environment each operator gives the container once Airflow rendered it."""
    docker = docker_task(task, DockerDeployment.for_tenant(plan))
    kubernetes = kubernetes_task(task, KubernetesDeployment.for_tenant(plan))
    for operator in (docker, kubernetes):
        operator.render_template_fields(context=context)  # type: ignore[arg-type]
    pod_env = {e.name: e.value for e in kubernetes.env_vars if e.value_from is None}
    return [docker.environment, pod_env]


def task_instance(task: TaskPlan) -> Any:
    """What the provider's macros read of a task instance: ids, try, and its DAG run."""
    dag_run = SimpleNamespace(
        logical_date=datetime(2026, 12, 1, 6, tzinfo=UTC), clear_number=0, conf={}
    )
    return SimpleNamespace(
        dag_id="acme__elt",
        task_id=task.task_id,
        try_number=1,
        map_index=-1,
        dag_run=dag_run,
        get_template_context=dict,
    )


def with_provider(ti: Any, variables: dict[str, str]) -> dict[str, Any]:
    """A template context as Airflow builds it with the OpenLineage provider enabled: its macros
    under `macros.OpenLineageProviderPlugin`, and the deployment's Variables."""
    plugin = SimpleNamespace(
        lineage_job_namespace=provider_macros.lineage_job_namespace,
        lineage_job_name=provider_macros.lineage_job_name,
        lineage_run_id=provider_macros.lineage_run_id,
    )
    value = SimpleNamespace(get=lambda key, default="": variables.get(key, default))
    return {
        "macros": SimpleNamespace(OpenLineageProviderPlugin=plugin),
        "task_instance": ti,
        "ti": ti,
        "var": SimpleNamespace(value=value),
    }


@pytest.mark.parametrize(("plan", "task"), every_task())
def test_every_runner_task_carries_the_lineage_environment(
    plan: TenantPlan, task: TaskPlan
) -> None:
    assert set(lineage_env()) == LINEAGE_NAMES
    assert {name: task.env[name] for name in LINEAGE_NAMES} == lineage_env()


@pytest.mark.parametrize(("plan", "task"), every_task())
def test_docker_and_kubernetes_render_the_same_parent_run_from_the_provider(
    plan: TenantPlan, task: TaskPlan
) -> None:
    ti = task_instance(task)
    context = with_provider(ti, {OPENLINEAGE_URL_VARIABLE: RECEIVER})
    docker_env, pod_env = rendered(plan, task, context)

    expected = {
        env.LINEAGE_PARENT_NAMESPACE: provider_macros.lineage_job_namespace(),
        env.LINEAGE_PARENT_JOB_NAME: f"acme__elt.{task.task_id}",
        env.LINEAGE_PARENT_RUN_ID: provider_macros.lineage_run_id(ti),
        env.OPENLINEAGE_URL: RECEIVER,
    }
    assert {n: docker_env[n] for n in LINEAGE_NAMES} == expected
    assert {n: pod_env[n] for n in LINEAGE_NAMES} == expected


def test_without_the_provider_or_the_variable_lineage_renders_empty() -> None:
    plan, task = every_task()[0].values
    ti = task_instance(task)
    no_provider = {**with_provider(ti, {}), "macros": SimpleNamespace()}
    for environment in rendered(plan, task, no_provider):
        assert {n: environment[n] for n in LINEAGE_NAMES} == dict.fromkeys(LINEAGE_NAMES, "")
