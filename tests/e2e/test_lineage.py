"""Under the real scheduler with Airflow's OpenLineage provider on, the demo tenant's DAG sends
its lineage to a local HTTP receiver: Airflow's task events and the runners' own, which name the
launching task's run as their parent.

The deployment is `make up`'s home (`stack.local_airflow`) with `DK_OPENLINEAGE_URL` set, its
four Airflow processes (`tests.kit.airflow_processes`, as supervisord starts them), on a small
TPC-H source. A first run succeeds: every task has a runner COMPLETE whose parent is the run
Airflow's provider reported for that task, every event validates against the client's models,
and the datasets connect each source table through Bronze to Gold. A second run, whose `region`
table is gone from the source, has that task's runner send FAIL with the error. No event holds a
password.
"""

from __future__ import annotations

import json
import shutil
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import pytest
import yaml

from datakit_orchestration.plan import TenantPlan
from stack.local_airflow import LINEAGE_NAMESPACE, LocalAirflow
from tests.kit.airflow_processes import airflow_processes
from tests.kit.databases import Database, Server
from tests.kit.lineage import Received, parse_event, receiver
from tests.kit.tenants import on_test_databases
from tests.kit.tpch_tenant import DEMO_TENANT_FILE, tpch_tenant

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("docker") is None, reason="no `docker` CLI: the runners are containers"
    ),
]
AIRFLOW_PORT = 28160  # below the ephemeral range, apart from the other e2e tests
EVENTS_WAIT_S = 120  # Airflow's provider sends a task's events from its own process, soon after


@dataclass
class Lineage:
    source: Database
    warehouse: Database
    plan: TenantPlan
    airflow: LocalAirflow
    received: Received
    passwords: list[str]


def tenant_yaml(source: Database, warehouse: Database) -> str:
    """The demo tenant on the test databases, no retries, and a schedule that starts next year:
    only the runs triggered here run."""
    tenant = on_test_databases(DEMO_TENANT_FILE, source, warehouse)
    tenant["schedule"] = {"cron": "@yearly", "start_date": date(date.today().year + 1, 1, 1)}
    tenant["retries"] = {"count": 0}
    return yaml.safe_dump(tenant, sort_keys=False)


@pytest.fixture(scope="module")
def lineage(
    pg_servers: tuple[Server, Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lineage]:
    root = tmp_path_factory.mktemp("lineage")
    with tpch_tenant(pg_servers, root, tenant_yaml) as tenant, receiver() as received:
        airflow = LocalAirflow(
            home=root / "home",
            tenants=tenant.tenants,
            dags=root / "dags",
            port=AIRFLOW_PORT,
            openlineage_url=received.url,
        )
        variables = airflow.database_variables(tenant.spec, **tenant.passwords())
        airflow.prepare(variables)
        with airflow_processes(airflow, root / "logs"):
            yield Lineage(
                tenant.source,
                tenant.warehouse,
                tenant.plan,
                airflow,
                received,
                list(variables.values()),
            )


def task_events(lineage: Lineage, dag_run_id: str) -> dict[str, dict[str, Any]]:
    """Airflow's own final event of each task of the DAG run (`<dag_id>.<task_id>`), once every
    task's has arrived."""
    dag_id = lineage.plan.dag_id
    wanted = {f"{dag_id}.{task.task_id}": task.task_id for task in lineage.plan.tasks}
    deadline = time.monotonic() + EVENTS_WAIT_S
    while True:
        found = {
            wanted[e["job"]["name"]]: e
            for e in lineage.received.events
            if e["job"]["namespace"] == LINEAGE_NAMESPACE
            and e["job"]["name"] in wanted
            and e["eventType"] in ("COMPLETE", "FAIL")
            and _dag_run_id(e) == dag_run_id
        }
        if len(found) == len(wanted) or time.monotonic() > deadline:
            return found
        time.sleep(1)


def runner_events(lineage: Lineage, parent_run_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in lineage.received.events
        if (e["run"].get("facets") or {}).get("parent", {}).get("run", {}).get("runId")
        == parent_run_id
        and e["run"]["runId"] != parent_run_id
    ]


def _dag_run_id(event: dict[str, Any]) -> str | None:
    facets = event["run"].get("facets") or {}
    dag_run = (facets.get("airflowDagRun") or {}).get("dagRun") or {}
    run_id = dag_run.get("run_id") or (facets.get("airflow") or {}).get("dagRun", {}).get("run_id")
    return str(run_id) if run_id else None


def reaches(edges: dict[str, set[str]], start: str) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges[todo.pop()] - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def test_every_runner_reports_to_its_airflow_task_and_bronze_connects_sources_to_gold(
    lineage: Lineage,
) -> None:
    airflow, dag_id = lineage.airflow, lineage.plan.dag_id
    airflow.trigger(dag_id, "lineage_1")
    run = airflow.wait_for_run(dag_id, "lineage_1", timeout_s=1200)
    assert run.state == "success", f"{run.task_states()}"

    tasks = task_events(lineage, "lineage_1")
    assert set(tasks) == {task.task_id for task in lineage.plan.tasks}, sorted(tasks)
    edges: dict[str, set[str]] = defaultdict(set)
    for task_id, task_event in tasks.items():
        assert task_event["eventType"] == "COMPLETE", task_id
        parent_run_id = task_event["run"]["runId"]
        events = runner_events(lineage, parent_run_id)
        kinds = [e["eventType"] for e in events]
        assert kinds == ["START", "COMPLETE"], (task_id, kinds)
        complete = parse_event(events[-1])
        parent = complete.run.facets["parent"]
        assert (parent.job.namespace, parent.job.name) == (LINEAGE_NAMESPACE, f"{dag_id}.{task_id}")
        assert complete.job.name.startswith(f"{dag_id}.{task_id}.")
        for read in complete.inputs or []:
            for wrote in complete.outputs or []:
                edges[f"{read.namespace}/{read.name}"].add(f"{wrote.namespace}/{wrote.name}")

    for event in lineage.received.events:
        parse_event(event)
    source = f"postgres://127.0.0.1:{lineage.source.server.port}/{lineage.source.name}.public"
    gold = f"postgres://127.0.0.1:{lineage.warehouse.server.port}/{lineage.warehouse.name}.gold"
    sources = {name for name in edges if name.startswith(source)}
    extracted = {
        task.task_id.removeprefix("extract__erp_")
        for task in lineage.plan.tasks
        if task.group == "bronze"
    }
    assert {name.rsplit(".", 1)[-1] for name in sources} == extracted
    assert len(extracted) == 8  # region … lineitem
    for table in sources:
        assert any(d.startswith(gold) for d in reaches(edges, table)), f"{table} reaches no Gold"
    for table, model in [("orders", "fct_orders"), ("region", "mart_revenue_by_nation_year")]:
        assert f"{gold}.{model}" in reaches(edges, f"{source}.{table}"), (table, model)
    assert_no_secret(lineage)


def test_a_failing_task_sends_fail_with_its_error_under_its_airflow_task(
    lineage: Lineage,
) -> None:
    airflow, dag_id = lineage.airflow, lineage.plan.dag_id
    lineage.source.execute("alter table region rename to region_gone")
    try:
        airflow.trigger(dag_id, "lineage_2")
        run = airflow.wait_for_run(dag_id, "lineage_2", timeout_s=1200)
    finally:
        lineage.source.execute("alter table region_gone rename to region")
    assert run.task_states()["extract__erp_region"] == "failed", run.task_states()

    task_event = task_events(lineage, "lineage_2")["extract__erp_region"]
    assert task_event["eventType"] == "FAIL"
    events = runner_events(lineage, task_event["run"]["runId"])
    assert [e["eventType"] for e in events] == ["START", "FAIL"]
    fail = parse_event(events[-1])
    assert "region" in fail.run.facets["errorMessage"].message
    assert_no_secret(lineage)


def assert_no_secret(lineage: Lineage) -> None:
    everything = json.dumps(lineage.received.events)
    for password in lineage.passwords:
        assert password not in everything
