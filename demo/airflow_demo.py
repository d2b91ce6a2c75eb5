"""`make demo`: the demo databases, the tenants' sources, and Airflow running each demo tenant's
DAG before and after a change batch.

1. The demo source and warehouse PostgreSQL start (stack/docker-compose.yml, compose project
   dk-demo, where the tenant files point), each tenant's source is seeded (acme: TPC-H at
   `--scale`, database `erp`; globex: a small CRM/billing data set, database `globex_erp`), and
   each tenant's schemas in the shared warehouse database start over.
2. Airflow (`airflow dags test`, SQLite metadata database under `--home`, prepared by
   stack/local_airflow.py like `make up`'s) runs each tenant's DAG with DockerOperator, which
   launches the runner images (globex's dbt tasks: its own image, etl/dbt-globex): Bronze,
   Silver, Gold and the quality gate.
3. A change batch hits each source (acme: new, changed and deleted orders, moved customers;
   globex: invoices paid, a payment bounced, a subscription grown) and the DAGs run again:
   incremental in Bronze, Silver and Gold. A report follows each run.

`--tenants acme` (the default, `make demo`) runs acme alone; `--tenants all` (`make demo
TENANTS=all`) runs acme and globex, the tenants with a demo database source, side by side (the
markets tenant reads the demo market API instead: orchestration/README.md, "An HTTP API
source"). The passwords are the demo databases' (stack/docker-compose.yml); they reach Airflow as
Variables in its metadata database, never as arguments.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path

import click
import psycopg
from psycopg import sql

from datakit_contract.names import layer_schema, state_schema
from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import TenantPlan, plan_tenant
from datakit_orchestration.spec import TenantSpec
from datakit_orchestration.tenancy import TenantSchemas
from demo.change_batch import apply_change_batch
from demo.report import report_run, tenant_prefix
from demo.seed_billing import apply_billing_changes, seed_billing
from demo.seed_tpch import seed_tpch
from stack import StackError, log_to_stderr
from stack.compose import databases
from stack.local_airflow import TENANTS, DagRun, LocalAirflow, demo_password
from stack.tenant_roles import init_roles

ROOT = Path(__file__).resolve().parent.parent
DB_PROJECT = "dk-demo"  # shared with `make up`, whose databases are the same two servers
WAREHOUSE_ADMIN = "warehouse"  # POSTGRES_USER of warehouse-db in stack/docker-compose.yml


@dataclass(frozen=True)
class Database:
    host: str
    port: int
    dbname: str
    user: str
    password: str

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(**asdict(self), autocommit=True)


@dataclass(frozen=True)
class DemoSource:
    """How the demo fills one tenant's source, what it changes between the two runs (both return
    a line for the report), and which Gold table the closing hints query."""

    seed: Callable[[Database, float], str]
    change: Callable[[psycopg.Connection, float], str]
    gold_table: str


def _seed_tpch(source: Database, scale: float) -> str:
    seed_tpch(**asdict(source), scale=scale)
    return f"TPC-H at scale factor {scale}"


def _tpch_changes(conn: psycopg.Connection, fraction: float) -> str:
    batch = apply_change_batch(conn, fraction=fraction, seed=1)
    return (
        f"{len(batch.new_orders)} new, {len(batch.changed_orders)} changed and "
        f"{len(batch.deleted_orders)} deleted orders; {len(batch.changed_customers)} customers "
        "moved"
    )


def _seed_billing(source: Database, _scale: float) -> str:
    counts = seed_billing(**asdict(source))
    return "CRM/billing: " + ", ".join(f"{rows} {table}" for table, rows in counts.items())


def _billing_changes(conn: psycopg.Connection, _fraction: float) -> str:
    changes = apply_billing_changes(conn)
    return (
        f"{len(changes.paid_invoices)} invoices paid, payment {changes.bounced_payment} "
        f"bounced, subscription {changes.grown_subscription} grown, contact "
        f"{changes.moved_contact} moved"
    )


DEMO_SOURCES = {
    "acme": DemoSource(_seed_tpch, _tpch_changes, "mart_revenue_by_nation_year"),
    "globex": DemoSource(_seed_billing, _billing_changes, "mart_mrr_by_month"),
}


@dataclass(frozen=True)
class DemoTenant:
    spec: TenantSpec
    plan: TenantPlan
    source: DemoSource

    @property
    def name(self) -> str:
        return self.spec.tenant

    def day(self, number: int) -> str:
        """The logical date of the tenant's run `number`: its schedule's start date, then on."""
        return (self.plan.start_date + timedelta(days=number)).isoformat()


def demo_tenants(names: str) -> list[DemoTenant]:
    """The tenants `--tenants` names (`all`: every tenant with a demo database source, acme and
    globex; markets reads the demo market API, `python -m demo.market_api`, and runs in
    tests/e2e/test_markets.py), each with its demo source."""
    chosen = (
        sorted(DEMO_SOURCES)
        if names == "all"
        else [name.strip() for name in names.split(",") if name.strip()]
    )
    unknown = [name for name in chosen if name not in DEMO_SOURCES]
    if unknown or not chosen:
        raise click.BadParameter(
            f"the demo fills the sources of {', '.join(f'`{t}`' for t in DEMO_SOURCES)} only, "
            f"not {', '.join(f'`{t}`' for t in unknown) or 'nothing'}; use `--tenants all` or a "
            "list of those",
            param_hint="--tenants",
        )
    found = []
    for name in chosen:
        spec = load_tenant(TENANTS / f"{name}.yaml")
        found.append(DemoTenant(spec, plan_tenant(spec), DEMO_SOURCES[name]))
    return found


def database(plan: TenantPlan, role: str) -> Database:
    """The tenant's warehouse (`role="warehouse"`, as the demo server's own superuser, who resets
    and reports on every tenant's schemas) or its first source, as its first Bronze task reaches
    it, with the demo database's password."""
    task_env = next(t for t in plan.tasks if t.group == "bronze").env
    prefix = f"DK_{role.upper()}__"
    return Database(
        host=task_env[prefix + "HOST"],
        port=int(task_env[prefix + "PORT"]),
        dbname=task_env[prefix + "DBNAME"],
        user=WAREHOUSE_ADMIN if role == "warehouse" else task_env[prefix + "USER"],
        password=demo_password(f"{role}-db"),
    )


def step(message: str) -> None:
    click.secho(f"\n==> {message}", bold=True, err=True)


def run_and_report(
    airflow: LocalAirflow, plan: TenantPlan, logical_date: str, title: str
) -> DagRun:
    step(f"{title}: airflow dags test {plan.dag_id} {logical_date}")
    run = airflow.run_dag(plan.dag_id, logical_date)
    with database(plan, "warehouse").connect() as conn:
        click.echo("\n" + report_run(conn, plan, run, title))
    if run.state != "success":
        failed = [t for t, task in run.tasks.items() if task.state not in ("success", "skipped")]
        raise click.ClickException(
            f"the DAG run {run.state}; tasks not successful: {', '.join(failed)}. "
            f"Task logs: {airflow.home / 'logs'}\n{run.tail(4000)}"
        )
    return run


@click.command()
@click.option(
    "--scale", default=0.1, show_default=True, help="TPC-H scale factor of acme's source."
)
@click.option(
    "--tenants",
    "names",
    default="acme",
    show_default=True,
    help="Whose DAGs run: `acme`, `globex`, a comma-separated list, or `all`.",
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=ROOT / "demo" / "data" / "airflow",
    show_default=True,
    help="AIRFLOW_HOME of the demo; emptied first, as the tenants' warehouse schemas are.",
)
@click.option("--fraction", default=0.01, show_default=True, help="Share of acme's orders changed.")
def main(scale: float, names: str, home: Path, fraction: float) -> None:
    for logger in ("stack", "seed_tpch", "seed_billing", "change_batch"):
        log_to_stderr(logger, f"{logger}: ")
    tenants = demo_tenants(names)
    first_plan = tenants[0].plan
    source, warehouse = database(first_plan, "source"), database(first_plan, "warehouse")
    for tenant in tenants:  # one source server and one warehouse server serve every tenant
        here = database(tenant.plan, "source").port, database(tenant.plan, "warehouse").port
        if here != (source.port, warehouse.port):
            raise click.ClickException(
                f"tenant `{tenant.name}` points at ports {here}, the demo servers are "
                f"{(source.port, warehouse.port)}: the demo runs tenants of one source and one "
                "warehouse server"
            )

    step(f"Starting the demo databases (source :{source.port}, warehouse :{warehouse.port})")
    databases(DB_PROJECT, source.port, warehouse.port).start()

    for tenant in tenants:
        tenant_source = database(tenant.plan, "source")
        step(f"Seeding tenant {tenant.name}'s source `{tenant_source.dbname}`")
        click.echo(tenant.source.seed(tenant_source, scale))
    # A fresh seed starts a fresh history: drop what an earlier demo left in the warehouse.
    with warehouse.connect() as conn:
        conn.execute("set client_min_messages = warning")
        for tenant in tenants:
            conn.execute(
                sql.SQL("drop schema if exists {} cascade").format(
                    sql.SQL(", ").join(map(sql.Identifier, TenantSchemas.of(tenant.spec).all))
                )
            )
        step("Warehouse roles of each tenant (warehouse-init, demo passwords)")
        init_roles([tenant.spec for tenant in tenants], conn)

    step(f"Airflow: metadata database, pools, Variables and DAGs in {home}")
    shutil.rmtree(home, ignore_errors=True)
    airflow = LocalAirflow(home=home)
    passwords = {"warehouse": warehouse.password, "sources": source.password}
    variables: dict[str, str] = {}
    for tenant in tenants:
        variables |= airflow.database_variables(tenant.spec, **passwords)
    airflow.prepare(variables)
    airflow.check_dags()
    # Each tenant's runs are its first two days: a logical date before a DAG's start date
    # would create no tasks.
    first = {
        tenant.name: run_and_report(airflow, tenant.plan, tenant.day(0), "First run")
        for tenant in tenants
    }

    for tenant in tenants:
        step(f"Change batch on tenant {tenant.name}'s source")
        with database(tenant.plan, "source").connect() as conn:
            click.echo(f"\nChange batch of {tenant.name}: {tenant.source.change(conn, fraction)}")
    second = {
        tenant.name: run_and_report(airflow, tenant.plan, tenant.day(1), "Second run (incremental)")
        for tenant in tenants
    }

    airflow_env = f"AIRFLOW_HOME={home} AIRFLOW__CORE__DAGS_FOLDER={airflow.dags}"
    click.echo("")
    for tenant in tenants:
        gold = layer_schema("gold", tenant_prefix(tenant.plan))
        dag_id = tenant.plan.dag_id
        click.echo(
            f"Tenant {tenant.name}: both runs took {first[tenant.name].seconds:.0f} s and "
            f"{second[tenant.name].seconds:.0f} s. Where to look:\n"
            f"  the data:   PGPASSWORD=… psql -h {warehouse.host} -p {warehouse.port} "
            f"-U {warehouse.user} {warehouse.dbname} "
            f"-c 'select * from {gold}.{tenant.source.gold_table}'\n"
            f"  task logs:  {home / 'logs'}/dag_id={dag_id}/\n"
            f"  the runs:   {airflow_env} .venv/bin/airflow dags list-runs {dag_id}\n"
            f"  the ledger: select * from {state_schema(tenant_prefix(tenant.plan))}.runs "
            "order by started_at desc  (in the warehouse)"
        )


if __name__ == "__main__":
    try:
        main()
    except StackError as exc:
        sys.exit(f"make demo: {exc}")
