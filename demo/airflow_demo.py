"""The Airflow part of `make demo`: run the demo tenant's DAG, apply a change batch, run it again.

Airflow (`airflow dags test`, SQLite metadata database under `--home`) runs the generated DAG of
`orchestration/tenants/acme.yaml` with DockerOperator, which launches the runner images against
the demo databases. After each run it prints what every task did and what each layer holds. The
passwords come from `DK_SOURCE__PASSWORD` and `DK_WAREHOUSE__PASSWORD` and reach Airflow as
Variables in its environment, never as arguments.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click
import psycopg

from datakit_orchestration.plan import TenantPlan, plan_tenant
from demo.change_batch import apply_change_batch
from demo.local_airflow import (
    AirflowCommandFailed,
    DagRun,
    LocalAirflow,
    database_passwords,
    tag_images,
)
from demo.report import report_run

ROOT = Path(__file__).resolve().parent.parent
TENANT = "acme"


def local_image(tech: str) -> str:
    """The image `make images` built for `tech`."""
    version = (ROOT / "runners" / tech / "VERSION").read_text().strip()
    return f"etl/{tech}-runner:{version}"


def connect(plan: TenantPlan, role: str) -> psycopg.Connection:
    """The tenant's warehouse (`role="warehouse"`) or its first source, as the demo user."""
    task = next(t for t in plan.tasks if t.group == "bronze")
    env = task.env
    prefix = "DK_WAREHOUSE__" if role == "warehouse" else "DK_SOURCE__"
    return psycopg.connect(
        host=env[prefix + "HOST"],
        port=int(env[prefix + "PORT"]),
        dbname=env[prefix + "DBNAME"],
        user=env[prefix + "USER"],
        password=os.environ[prefix + "PASSWORD"],
        autocommit=True,
    )


def run_and_report(
    airflow: LocalAirflow, plan: TenantPlan, logical_date: str, title: str
) -> DagRun:
    click.secho(
        f"\n==> {title}: airflow dags test {plan.dag_id} {logical_date}", bold=True, err=True
    )
    run = airflow.run_dag(plan.dag_id, logical_date)
    with connect(plan, "warehouse") as conn:
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
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=ROOT / "demo" / "data" / "airflow",
    show_default=True,
    help="AIRFLOW_HOME of the demo; emptied first, as the warehouse is.",
)
@click.option("--fraction", default=0.01, show_default=True, help="Share of orders changed.")
def main(home: Path, fraction: float) -> None:
    shutil.rmtree(home, ignore_errors=True)
    airflow = LocalAirflow(
        home=home, tenants=ROOT / "orchestration" / "tenants", dags=ROOT / "orchestration" / "dags"
    )
    spec = airflow.spec(TENANT)
    plan = plan_tenant(spec)
    passwords = database_passwords(
        spec, os.environ["DK_WAREHOUSE__PASSWORD"], os.environ["DK_SOURCE__PASSWORD"]
    )
    airflow.set_secrets(plan, passwords)
    tag_images(plan, local_image)

    click.secho(f"==> Airflow: metadata database, pools and DAGs in {home}", bold=True, err=True)
    airflow.prepare()
    first = run_and_report(airflow, plan, "2024-01-01", "First run")

    click.secho(
        f"\n==> Change batch on the source: {fraction:.0%} of orders new, changed or deleted; "
        f"{fraction:.0%} of customers moved",
        bold=True,
        err=True,
    )
    with connect(plan, "source") as conn:
        batch = apply_change_batch(conn, fraction=fraction, seed=1)
    click.echo(
        f"\nChange batch: {len(batch.new_orders)} new, {len(batch.changed_orders)} changed and "
        f"{len(batch.deleted_orders)} deleted orders; "
        f"{len(batch.changed_customers)} customers moved"
    )
    second = run_and_report(airflow, plan, "2024-01-02", "Second run (incremental)")

    env = f"AIRFLOW_HOME={home} AIRFLOW__CORE__DAGS_FOLDER={airflow.dags}"
    task = next(t for t in plan.tasks if t.group == "bronze")
    click.echo(
        f"\nBoth runs took {first.seconds:.0f} s and {second.seconds:.0f} s. Where to look:\n"
        f"  the data:   PGPASSWORD=… psql -h {task.env['DK_WAREHOUSE__HOST']} "
        f"-p {task.env['DK_WAREHOUSE__PORT']} -U {task.env['DK_WAREHOUSE__USER']} "
        f"{task.env['DK_WAREHOUSE__DBNAME']} -c 'select * from gold.mart_revenue_by_nation_year'\n"
        f"  task logs:  {home / 'logs'}/dag_id={plan.dag_id}/\n"
        f"  the runs:   {env} .venv/bin/airflow dags list-runs {plan.dag_id}\n"
        f"  the ledger: select * from datakit.runs order by started_at desc  (in the warehouse)"
    )


if __name__ == "__main__":
    try:
        main()
    except AirflowCommandFailed as exc:
        sys.exit(f"make demo: {exc}")
