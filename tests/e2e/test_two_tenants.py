"""Two tenants, one warehouse database, both with a source named `erp`, their DAGs running at the
same time under the real scheduler: each Gold equals its own source, and neither touched the
other's schemas.

acme (the TPC-H ERP, no schema prefix, the built-in dbt project) and globex (a CRM/billing data
set, prefix `globex_`, its own dbt project baked into `etl/dbt-globex`) are the shipped tenant
files pointed at the test servers. Each logs in as its own warehouse roles, which warehouse-init
made. The deployment is `make up`'s: `stack.local_airflow` prepares the home, supervisord runs the
API server, scheduler, DAG processor and triggerer, and the runs are triggered as a user would.
"""

from __future__ import annotations

import shutil
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime

import pytest
import yaml

from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import TenantPlan, plan_tenant
from demo.seed_billing import seed_billing
from demo.seed_tpch import seed_tpch
from stack.local_airflow import DagRun, LocalAirflow
from stack.supervisor import Supervisor, ensure_installed
from tests.kit.databases import Database, Server, fresh_database
from tests.kit.docker import runner_image, tenant_dbt_image
from tests.kit.paths import TENANTS
from tests.kit.tenants import init_test_roles, on_test_databases
from tests.kit.tpch import GOLD_PRICING_SUMMARY, PRICING_SUMMARY_ON_SOURCE

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("docker") is None, reason="no `docker` CLI: the runners are containers"
    ),
]
AIRFLOW_PORT = 28097  # below the ephemeral range, apart from `make up` and the other e2e tests
NAMES = ("acme", "globex")


@dataclass
class Deployment:
    sources: dict[str, Database]
    warehouse: Database
    plans: dict[str, TenantPlan]
    airflow: LocalAirflow


def seed(name: str, source: Database) -> None:
    server = source.server
    login = {
        "host": "127.0.0.1",
        "port": server.port,
        "dbname": source.name,
        "user": server.user,
        "password": server.password,
    }
    if name == "acme":
        seed_tpch(**login, scale=0.01)
    else:
        seed_billing(**login)


@pytest.fixture(scope="module")
def deployment(
    pg_servers: tuple[Server, Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    generators = {name: fresh_database(pg_servers[0]) for name in NAMES}
    warehouse_gen = fresh_database(pg_servers[1])
    sources = {name: next(gen) for name, gen in generators.items()}
    warehouse = next(warehouse_gen)
    root = tmp_path_factory.mktemp("two-tenants")
    tenants = root / "tenants"
    shutil.copytree(TENANTS / "globex", tenants / "globex")  # its dbt project, next to its file
    specs = []
    for name, source in sources.items():
        seed(name, source)
        tenant = on_test_databases(TENANTS / f"{name}.yaml", source, warehouse)
        # A schedule that starts next year: only the runs triggered here run.
        tenant["schedule"] = {"cron": "@daily", "start_date": date(date.today().year + 1, 1, 1)}
        (tenants / f"{name}.yaml").write_text(yaml.safe_dump(tenant, sort_keys=False), "utf-8")
        specs.append(load_tenant(tenants / f"{name}.yaml"))
    init_test_roles(specs, warehouse)
    plans = {spec.tenant: plan_tenant(spec) for spec in specs}
    runner_image("postgres")
    runner_image("dbt")
    tenant_dbt_image("globex")  # `make tenant-image TENANT=globex`, the shipped project
    airflow = LocalAirflow(
        home=root / "home", tenants=tenants, dags=root / "dags", port=AIRFLOW_PORT, parallelism=6
    )
    passwords = {"warehouse": warehouse.server.password, "sources": pg_servers[0].password}
    variables: dict[str, str] = {}
    for spec in specs:
        variables |= airflow.database_variables(spec, **passwords)
    ensure_installed()
    airflow.prepare(variables)
    supervisor = Supervisor(root / "state", airflow.env())
    supervisor.start()
    try:
        airflow.wait_healthy(240)
        yield Deployment(sources, warehouse, plans, airflow)
    finally:
        supervisor.stop()
        for generator in (*generators.values(), warehouse_gen):
            next(generator, None)


def run_window(airflow: LocalAirflow, run: DagRun) -> tuple[datetime, datetime]:
    with sqlite3.connect(airflow.home / "airflow.db") as db:
        start, end = db.execute(
            "select start_date, end_date from dag_run where dag_id = ? and run_id = ?",
            (run.dag_id, run.run_id),
        ).fetchone()
    return datetime.fromisoformat(start), datetime.fromisoformat(end)


def test_both_tenants_run_at_once_and_each_gold_equals_its_own_source(
    deployment: Deployment,
) -> None:
    airflow, plans = deployment.airflow, deployment.plans
    for plan in plans.values():
        airflow.trigger(plan.dag_id, "together_1")
    runs = {name: airflow.wait_for_run(plan.dag_id, "together_1") for name, plan in plans.items()}
    for name, run in runs.items():
        not_done = {t: s for t, s in run.task_states().items() if s not in ("success", "skipped")}
        assert run.state == "success" and not not_done, (name, not_done, run.tail())
    (a_start, a_end), (g_start, g_end) = (run_window(airflow, run) for run in runs.values())
    assert a_start < g_end and g_start < a_end, "the two runs did not overlap"

    warehouse, acme, globex = (
        deployment.warehouse,
        deployment.sources["acme"],
        deployment.sources["globex"],
    )
    assert warehouse.execute(GOLD_PRICING_SUMMARY) == acme.execute(PRICING_SUMMARY_ON_SOURCE)
    assert warehouse.execute("select count(*) from gold.fct_orders") == acme.execute(
        "select count(*) from orders"
    )
    assert warehouse.execute(
        "select sum(mrr), sum(collected) from globex_gold.mart_mrr_by_month"
    ) == globex.execute(
        "select (select sum(amount) from invoices where status <> 'void'), "
        "(select sum(p.amount) from payments p join invoices i using (invoice_id) "
        "where i.status <> 'void')"
    )
    assert warehouse.execute("select count(*) from globex_gold.dim_accounts") == globex.execute(
        "select count(*) from accounts"
    )
    # The same source name landed twice, each tenant's rows in its own schema, each run in its
    # own ledger, written by its own loader role.
    bronze = warehouse.execute(
        "select nspname, pg_get_userbyid(nspowner) from pg_namespace "
        "where nspname like '%bronze_erp' order by 1"
    )
    assert bronze == [("bronze_erp", "acme_loader"), ("globex_bronze_erp", "globex_loader")]
    for schema, tenant in (("datakit", "acme"), ("globex_datakit", "globex")):
        ledger = warehouse.execute(f"select distinct tenant, status from {schema}.runs")
        assert ledger == [(tenant, "succeeded")], (schema, ledger)
    # What dbt's `--since-last-build` records is each tenant's own, beside its Silver, owned by
    # its transformer (the isolation matrix shows no other tenant's role reaches that schema).
    records = warehouse.execute(
        "select schemaname, tableowner from pg_tables where tablename = 'dk_built_nodes' order by 1"
    )
    assert records == [("globex_silver", "globex_transformer"), ("silver", "acme_transformer")]
