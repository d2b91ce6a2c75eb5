"""Every task is bounded: the tenant's timeouts become each task's execution timeout (the same
under Docker and Kubernetes), the runner's own limits (`DK_STALL_TIMEOUT_S`,
`DK_EXECUTION_TIMEOUT_S`), and a notification when a task times out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from datakit_orchestration.adapters.docker import DockerDeployment, docker_task
from datakit_orchestration.adapters.kubernetes import KubernetesDeployment, kubernetes_task
from datakit_orchestration.adapters.notify import WhenTimedOut, timed_out
from datakit_orchestration.dags import build_dag
from datakit_orchestration.loader import TenantSpecError, load_tenant
from datakit_orchestration.plan import TaskPlan, plan_tenant, runner_deadline
from datakit_orchestration.spec import TenantSpec
from tests.kit.tenants import base, every_task, write_tenant


def tenant(**changes: Any) -> TenantSpec:
    data = base()
    for path, value in changes.items():
        target = data
        *parents, last = path.split("__")
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    return TenantSpec.model_validate(data)


def test_defaults_bound_every_task_and_every_runner() -> None:
    plan = plan_tenant(tenant())
    for task in plan.tasks:
        assert task.execution_timeout_seconds == 7200  # 2h
        assert task.startup_timeout_seconds == 300
        assert task.env["DK_STALL_TIMEOUT_S"] == "300"
        assert task.env["DK_EXECUTION_TIMEOUT_S"] == str(7200 - 120)


def test_a_table_overrides_its_source_which_overrides_the_tenant() -> None:
    plan = plan_tenant(
        tenant(
            timeouts={"execution": "90m", "stall": "45s", "pod_startup": "10m"},
            sources__0__execution_timeout="30m",
            sources__0__tables__0__execution_timeout="1h",
        )
    )
    assert plan.task("extract__erp_orders").execution_timeout_seconds == 3600
    assert plan.task("extract__erp_customers").execution_timeout_seconds == 1800
    assert plan.task("dbt_build__silver").execution_timeout_seconds == 5400
    assert {t.env["DK_STALL_TIMEOUT_S"] for t in plan.tasks} == {"45"}
    assert {t.startup_timeout_seconds for t in plan.tasks} == {600}


def test_a_dbt_step_overrides_the_dbt_timeout() -> None:
    plan = plan_tenant(
        tenant(dbt__execution_timeout="20m", dbt__step_execution_timeouts={"silver": "2h"})
    )
    assert plan.task("dbt_build__silver").execution_timeout_seconds == 7200
    assert plan.task("dbt_run__gold").execution_timeout_seconds == 1200
    assert plan.task("dbt_test__gold").execution_timeout_seconds == 1200


@pytest.mark.parametrize(
    ("timeout", "deadline"), [(30, 25), (600, 570), (7200, 7080), (86_400, 86_280)]
)
def test_the_runner_stops_itself_a_little_before_airflow_would(timeout: int, deadline: int) -> None:
    assert runner_deadline(timeout) == deadline


def test_a_bad_duration_is_reported_at_its_path_with_the_fix(tmp_path: Path) -> None:
    data = base()
    data["timeouts"] = {"execution": "2 hours"}
    data["dbt"]["step_execution_timeouts"] = {"gold": "10"}
    with pytest.raises(TenantSpecError) as caught:
        load_tenant(write_tenant(tmp_path, data))
    problems = caught.value.problems
    assert any(p.startswith("timeouts.execution: `2 hours` is not a duration") for p in problems)
    assert any("dbt.step_execution_timeouts.gold: `10` is not a duration" in p for p in problems)


@pytest.mark.parametrize(("plan", "task"), every_task())
def test_docker_and_kubernetes_get_the_same_execution_timeout(plan: Any, task: TaskPlan) -> None:
    docker = docker_task(task, DockerDeployment.for_tenant(plan))
    kubernetes = kubernetes_task(task, KubernetesDeployment.for_tenant(plan))
    expected = timedelta(seconds=task.execution_timeout_seconds)
    assert docker.execution_timeout == kubernetes.execution_timeout == expected
    assert kubernetes.startup_timeout_seconds == task.startup_timeout_seconds
    # A container past its timeout is still running: only a forced removal takes it away.
    assert docker.auto_remove == "force"


@dataclass
class FakeTaskInstance:
    task_id: str
    start_date: datetime | None


@pytest.fixture
def timed_dag(monkeypatch: pytest.MonkeyPatch, webhook: tuple[str, list[Any]]) -> Any:
    """A tenant with a Slack webhook (pointing at the local receiver), as a Docker DAG."""
    data = base()
    data["timeouts"] = {"execution": "10m"}
    data["notifications"] = {"webhooks": {"slack": {"name": "alerts", "key": "slack"}}}
    monkeypatch.setenv("AIRFLOW_VAR_DATAKIT__INITECH__ALERTS__SLACK", webhook[0])
    return build_dag(plan_tenant(TenantSpec.model_validate(data)), "docker")


def callback_context(dag: Any, task_id: str, ran: timedelta) -> dict[str, Any]:
    task = dag.get_task(task_id)
    ti = FakeTaskInstance(task_id, datetime.now(UTC) - ran)
    return {"dag": dag, "task": task, "ti": ti, "run_id": "manual__1"}


def test_a_task_that_ran_to_its_deadline_is_reported_as_timed_out(
    timed_dag: Any, webhook: tuple[str, list[Any]]
) -> None:
    task = timed_dag.get_task("extract__erp_orders")
    [callback] = task.on_failure_callback
    assert isinstance(callback, WhenTimedOut)
    callback(callback_context(timed_dag, "extract__erp_orders", timedelta(seconds=571)))
    assert webhook[1] == [
        {
            "text": "datakit: `initech__elt` task `extract__erp_orders` timed out: it ran past "
            "its execution timeout (0:10:00) in run `manual__1`"
        }
    ]


def test_a_task_that_failed_early_is_left_to_the_run_notification(
    timed_dag: Any, webhook: tuple[str, list[Any]]
) -> None:
    context = callback_context(timed_dag, "dbt_build__silver", timedelta(seconds=60))
    assert not timed_out(context)  # type: ignore[arg-type]
    for callback in timed_dag.get_task("dbt_build__silver").on_failure_callback:
        callback(context)
    assert webhook[1] == []


def test_no_timeout_notice_for_a_tenant_that_hears_of_no_failure() -> None:
    data = base()
    data["notifications"] = {"on_failure": False, "email": ["a@b.example"]}
    dag = build_dag(plan_tenant(TenantSpec.model_validate(data)), "kubernetes")
    assert all(not task.on_failure_callback for task in dag.tasks)
