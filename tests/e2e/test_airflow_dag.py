"""Real Airflow runs the generated tenant DAG with DockerOperator and the built runner images.

The deployment is `make demo`'s and `make up`'s (`stack/local_airflow.py`): a SQLite
`AIRFLOW_HOME` with the tenant's DAG file and pools, passwords as Variables in the metadata
database, and the images under the names the tenant pins; here the demo tenant file points at a
TPC-H source and an empty warehouse on the test servers. Airflow runs in a subprocess
(`airflow dags test`); task states and XComs are read from its database afterwards.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import yaml

from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import TenantPlan, plan_tenant
from demo.change_batch import ChangeBatch, apply_change_batch
from stack.local_airflow import DagRun, LocalAirflow
from tests.kit.databases import Database, Server, fresh_database
from tests.kit.docker import runner_image
from tests.kit.paths import ROOT
from tests.kit.tenants import init_test_roles, on_test_databases
from tests.kit.tpch import GOLD_PRICING_SUMMARY, PRICING_SUMMARY_ON_SOURCE, seed_tpch_into

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("docker") is None, reason="no `docker` CLI: the runners are containers"
    ),
]
TENANT_FILE = ROOT / "orchestration" / "tenants" / "acme.yaml"


@dataclass
class Deployment:
    """One local Airflow deployment of the demo tenant, pointed at the test databases."""

    source: Database
    warehouse: Database
    plan: TenantPlan
    airflow: LocalAirflow
    runs: dict[str, DagRun] = field(default_factory=dict)

    def run_dag(self, logical_date: str) -> DagRun:
        run = self.airflow.run_dag(self.plan.dag_id, logical_date)
        self.runs[logical_date] = run
        return run


def tenant_yaml(source: Database, warehouse: Database) -> str:
    """The demo tenant file with its databases replaced by the test databases."""
    tenant = on_test_databases(TENANT_FILE, source, warehouse)
    return yaml.safe_dump(tenant, sort_keys=False)


@pytest.fixture(scope="module")
def deployment(
    pg_servers: tuple[Server, Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    source_server, warehouse_server = pg_servers
    source_gen, warehouse_gen = fresh_database(source_server), fresh_database(warehouse_server)
    source, warehouse = next(source_gen), next(warehouse_gen)
    seed_tpch_into(source, 0.01)

    root = tmp_path_factory.mktemp("airflow-e2e")
    tenants = root / "tenants"
    tenants.mkdir()
    (tenants / TENANT_FILE.name).write_text(tenant_yaml(source, warehouse), encoding="utf-8")
    airflow = LocalAirflow(home=root / "home", tenants=tenants, dags=root / "dags")
    spec = load_tenant(tenants / TENANT_FILE.name)
    init_test_roles([spec], warehouse)
    plan = plan_tenant(spec)
    for image in {task.image.rsplit("/", 1)[-1] for task in plan.tasks}:
        runner_image(image.split("-runner:")[0])  # built here when `make images` has not
    passwords = {"warehouse": warehouse.server.password, "sources": source.server.password}
    airflow.prepare(airflow.database_variables(spec, **passwords))
    airflow.check_dags()
    yield Deployment(source, warehouse, plan, airflow)
    for generator in (source_gen, warehouse_gen):
        next(generator, None)
    shutil.rmtree(root, ignore_errors=True)


def extract_tasks(plan: TenantPlan) -> list[str]:
    return [task.task_id for task in plan.tasks if task.group == "bronze"]


def assert_run_succeeded(deployment: Deployment, run: DagRun) -> None:
    wanted = {task.task_id for task in deployment.plan.tasks}
    states = run.task_states()
    assert run.state == "success", f"DAG run is {run.state}: {states}\n{run.tail()}"
    assert set(states) == wanted, states
    not_done = {t: s for t, s in states.items() if s not in ("success", "skipped")}
    assert not not_done, f"tasks not successful: {not_done}\n{run.tail()}"
    # Only an extract with nothing to do (exit 99) may be skipped; dbt always runs.
    skipped = {t for t, s in states.items() if s == "skipped"}
    assert skipped <= set(extract_tasks(deployment.plan)), states
    # Every task that ran pushed its RunResult as a JSON object, as under Kubernetes.
    for task_id in wanted - skipped:
        assert run.result(task_id)["exit_code"] == 0, run.result(task_id)


def assert_gold_equals_source(deployment: Deployment) -> None:
    source, warehouse = deployment.source, deployment.warehouse
    assert warehouse.execute(GOLD_PRICING_SUMMARY) == source.execute(PRICING_SUMMARY_ON_SOURCE)
    assert warehouse.execute("select count(*) from gold.fct_orders") == source.execute(
        "select count(*) from orders"
    )


def extract_results(deployment: Deployment, run: DagRun) -> dict[str, dict[str, Any]]:
    """Each extracted table's entry of its task's RunResult, by table name."""
    tables: dict[str, dict[str, Any]] = {}
    for task_id in extract_tasks(deployment.plan):
        if run.tasks[task_id].state == "skipped":
            continue
        result = run.result(task_id)
        assert result["status"] == "succeeded", result
        (table,) = result["tables"]
        table_name = task_id.removeprefix("extract__erp_")
        assert table["table"] == table_name, (task_id, table)
        tables[table_name] = table
    return tables


def test_the_dag_run_loads_bronze_to_gold(deployment: Deployment) -> None:
    plan = deployment.plan
    run = deployment.run_dag("2024-01-02")
    assert_run_succeeded(deployment, run)
    tables = extract_results(deployment, run)
    assert set(tables) == {task.removeprefix("extract__erp_") for task in extract_tasks(plan)}
    ((orders,),) = deployment.source.execute("select count(*) from orders")
    assert tables["orders"]["rows_read"] == orders
    assert_gold_equals_source(deployment)


def test_a_second_run_moves_only_the_change_batch(deployment: Deployment) -> None:
    if "2024-01-02" not in deployment.runs:
        pytest.skip("needs the first DAG run (test_the_dag_run_loads_bronze_to_gold) first")
    with deployment.source.connect(autocommit=True) as conn:
        batch: ChangeBatch = apply_change_batch(conn, fraction=0.01, seed=3)
    run = deployment.run_dag("2024-01-03")
    assert_run_succeeded(deployment, run)
    tables = extract_results(deployment, run)
    orders = tables["orders"]
    assert (orders["rows_read"], orders["rows_deleted"]) == (
        len(batch.new_orders) + len(batch.changed_orders),
        len(batch.deleted_orders),
    )
    assert (tables["lineitem"]["rows_read"], tables["lineitem"]["rows_deleted"]) == (
        batch.new_lines,
        batch.deleted_lines,
    )
    # dbt builds what reads the loaded tables (`--since-last-build`), and says why.
    silver = run.result("dbt_build__silver")["output"]["since_last_build"]["built"]
    assert silver["model.datakit.stg_erp__orders"] == "changed input: erp.orders"
    gold = run.result("dbt_run__gold")["output"]["since_last_build"]["built"]
    assert gold["model.datakit.mart_pricing_summary"].startswith("changed input: ")
    assert_gold_equals_source(deployment)
