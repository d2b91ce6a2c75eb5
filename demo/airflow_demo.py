"""`make demo`: the demo databases, a TPC-H source, and Airflow running the demo tenant's DAG
before and after a change batch.

1. The demo source and warehouse PostgreSQL start (stack/docker-compose.yml, compose project
   dk-demo, where the tenant file `orchestration/tenants/acme.yaml` points), the source is seeded
   with TPC-H at `--scale`, and the warehouse starts over (an earlier demo's schemas dropped).
2. Airflow (`airflow dags test`, SQLite metadata database under `--home`, prepared by
   stack/local_airflow.py like `make up`'s) runs the tenant's DAG with DockerOperator, which
   launches the runner images: Bronze, Silver, Gold and the quality gate.
3. A change batch hits the source (new, changed and deleted orders, moved customers) and the DAG
   runs again: incremental in Bronze, Silver and Gold. A report follows each run.

The passwords are the demo databases' (stack/docker-compose.yml); they reach Airflow as Variables
in its metadata database, never as arguments.
"""

from __future__ import annotations

import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import click
import psycopg

from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import TenantPlan, plan_tenant
from demo.change_batch import apply_change_batch
from demo.report import report_run
from demo.seed_tpch import seed_tpch
from stack import StackError, log_to_stderr
from stack.compose import databases
from stack.local_airflow import TENANTS, DagRun, LocalAirflow, demo_password

ROOT = Path(__file__).resolve().parent.parent
TENANT = "acme"
DB_PROJECT = "dk-demo"  # shared with `make up`, whose databases are the same two servers


@dataclass(frozen=True)
class Database:
    host: str
    port: int
    dbname: str
    user: str
    password: str

    def connect(self) -> psycopg.Connection:
        return psycopg.connect(**asdict(self), autocommit=True)


def database(plan: TenantPlan, role: str) -> Database:
    """The tenant's warehouse (`role="warehouse"`) or its first source, as its first Bronze task
    reaches it, with the demo database's password."""
    env = next(t for t in plan.tasks if t.group == "bronze").env
    prefix = f"DK_{role.upper()}__"
    return Database(
        host=env[prefix + "HOST"],
        port=int(env[prefix + "PORT"]),
        dbname=env[prefix + "DBNAME"],
        user=env[prefix + "USER"],
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
@click.option("--scale", default=0.1, show_default=True, help="TPC-H scale factor of the source.")
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=ROOT / "demo" / "data" / "airflow",
    show_default=True,
    help="AIRFLOW_HOME of the demo; emptied first, as the warehouse is.",
)
@click.option("--fraction", default=0.01, show_default=True, help="Share of orders changed.")
def main(scale: float, home: Path, fraction: float) -> None:
    for logger in ("stack", "seed_tpch", "change_batch"):
        log_to_stderr(logger, f"{logger}: ")
    spec = load_tenant(TENANTS / f"{TENANT}.yaml")
    plan = plan_tenant(spec)
    source, warehouse = database(plan, "source"), database(plan, "warehouse")

    step(f"Starting the demo databases (source :{source.port}, warehouse :{warehouse.port})")
    databases(DB_PROJECT, source.port, warehouse.port).start()

    step(f"Seeding the ERP source with TPC-H at scale factor {scale}")
    seed_tpch(**asdict(source), scale=scale)
    # A fresh seed starts a fresh history: drop what an earlier demo left in the warehouse.
    with warehouse.connect() as conn:
        conn.execute("set client_min_messages = warning")
        conn.execute("drop schema if exists bronze_erp, silver, snapshots, gold, datakit cascade")

    step(f"Airflow: metadata database, pools, Variables and DAGs in {home}")
    shutil.rmtree(home, ignore_errors=True)
    airflow = LocalAirflow(home=home)
    passwords = {"warehouse": warehouse.password, "sources": source.password}
    airflow.prepare(airflow.database_variables(spec, **passwords))
    airflow.check_dags()
    first = run_and_report(airflow, plan, "2024-01-01", "First run")

    step(
        f"Change batch on the source: {fraction:.0%} of orders new, changed or deleted; "
        f"{fraction:.0%} of customers moved"
    )
    with source.connect() as conn:
        batch = apply_change_batch(conn, fraction=fraction, seed=1)
    click.echo(
        f"\nChange batch: {len(batch.new_orders)} new, {len(batch.changed_orders)} changed and "
        f"{len(batch.deleted_orders)} deleted orders; "
        f"{len(batch.changed_customers)} customers moved"
    )
    second = run_and_report(airflow, plan, "2024-01-02", "Second run (incremental)")

    env = f"AIRFLOW_HOME={home} AIRFLOW__CORE__DAGS_FOLDER={airflow.dags}"
    click.echo(
        f"\nBoth runs took {first.seconds:.0f} s and {second.seconds:.0f} s. Where to look:\n"
        f"  the data:   PGPASSWORD=… psql -h {warehouse.host} -p {warehouse.port} "
        f"-U {warehouse.user} {warehouse.dbname} "
        "-c 'select * from gold.mart_revenue_by_nation_year'\n"
        f"  task logs:  {home / 'logs'}/dag_id={plan.dag_id}/\n"
        f"  the runs:   {env} .venv/bin/airflow dags list-runs {plan.dag_id}\n"
        f"  the ledger: select * from datakit.runs order by started_at desc  (in the warehouse)"
    )


if __name__ == "__main__":
    try:
        main()
    except StackError as exc:
        sys.exit(f"make demo: {exc}")
