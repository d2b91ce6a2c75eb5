"""`python -m stack.dbt_docs SITE`: keep the dbt docs of every tenant of the local stack fresh.

After each successful Gold run (`dbt_run__gold` of `<tenant>__elt`, as Airflow's metadata
database records it) the tenant's dbt image runs `dbt-runner docs --output-dir` with the same
image, environment and login as its Gold task, writing index.html, manifest.json and catalog.json
into SITE/<tenant>/. The stack's file server (stack/supervisord.conf: docs-server) serves SITE,
and Traefik routes https://docs.localhost to it. SITE/index.html lists the tenants.

supervisord runs it (program docs-refresher) beside Airflow, with Airflow's environment
(AIRFLOW_HOME); it reads the metadata database read-only and never changes Airflow.
"""

from __future__ import annotations

import argparse
import html
import logging
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from datakit_orchestration.plan import TaskPlan, lineage_env, plan_tenant, variable_name
from datakit_orchestration.spec import TenantSpec
from stack import StackError, log_to_stderr
from stack.local_airflow import LocalAirflow, demo_password

GOLD_TASK = "dbt_run__gold"
MARKER = ".gold-run"  # SITE/<tenant>/.gold-run: the end of the Gold run its docs describe
POLL_SECONDS = 15

log = logging.getLogger("stack.dbt_docs")


def last_gold_run(airflow_db: Path, dag_id: str) -> str | None:
    """When the DAG's latest successful Gold task ended (Airflow's own timestamp), or None."""
    if not airflow_db.is_file():
        return None
    with sqlite3.connect(f"file:{airflow_db}?mode=ro", uri=True, timeout=10) as db:
        try:
            row = db.execute(
                "select max(end_date) from task_instance "
                "where dag_id = ? and task_id = ? and state = 'success'",
                (dag_id, GOLD_TASK),
            ).fetchone()
        except sqlite3.OperationalError:  # not migrated yet
            return None
    return str(row[0]) if row and row[0] else None


def docs_command(task: TaskPlan, out: Path) -> list[str]:
    """`docker run` of the Gold task's image with its environment (values passed by name, never
    in argv), writing the site into `out` as this process's user."""
    command = [
        "docker",
        "run",
        "--rm",
        "--network",
        "host",
        "--user",
        f"{os.getuid()}:{os.getgid()}",
    ]
    for name in sorted({*task.env, *(secret.env_var for secret in task.secrets)}):
        command += ["-e", name]
    return [*command, "-v", f"{out}:/out", task.image, "docs", "--output-dir", "/out"]


def refresh(spec: TenantSpec, airflow: LocalAirflow, site: Path) -> None:
    """Generate the tenant's docs into `site`/<tenant>/ with its Gold task's image and login."""
    gold = plan_tenant(spec).task(GOLD_TASK)
    variables = airflow.database_variables(
        spec, warehouse=demo_password("warehouse-db"), sources=demo_password("source-db")
    )
    # The lineage entries are templates only Airflow renders: a docs run sends no lineage.
    env = {name: value for name, value in gold.env.items() if name not in lineage_env()}
    for secret in gold.secrets:
        env[secret.env_var] = variables[variable_name(spec.tenant, secret.secret)]
    out = site / spec.tenant
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        docs_command(gold, out),
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=gold.execution_timeout_seconds,
    )
    if done.returncode != 0:
        raise StackError(
            f"`dbt-runner docs` of tenant `{spec.tenant}` ({gold.image}) exited "
            f"{done.returncode}: {done.stderr.strip()[-1500:]}"
        )
    log.info("dbt docs of %s refreshed in %s", spec.tenant, out)


def write_index(site: Path, tenants: list[str]) -> None:
    """SITE/index.html: a link to each tenant's docs, or why there are none yet."""
    items = []
    for tenant in tenants:
        name = html.escape(tenant)
        if (site / tenant / "index.html").is_file():
            items.append(f'<li><a href="{name}/">{name}</a></li>')
        else:
            items.append(f"<li>{name}: no docs yet, they appear after its first Gold run</li>")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>dbt docs</title></head><body>"
        "<h1>dbt docs, per tenant</h1><ul>" + "".join(items) + "</ul></body></html>\n"
    )
    index = site / "index.html"
    if not index.is_file() or index.read_text(encoding="utf-8") != page:
        index.write_text(page, encoding="utf-8")


def refresh_due(airflow: LocalAirflow, site: Path, specs: list[TenantSpec]) -> None:
    """Refresh each tenant whose latest Gold run is newer than its docs; a failure is logged and
    tried again after the tenant's next Gold run."""
    for spec in specs:
        ended = last_gold_run(airflow.home / "airflow.db", plan_tenant(spec).dag_id)
        marker = site / spec.tenant / MARKER
        if ended is None or (marker.is_file() and marker.read_text(encoding="utf-8") == ended):
            continue
        try:
            refresh(spec, airflow, site)
        except Exception as exc:  # one tenant's docs never stop the others' (the loop's boundary)
            log.error("ERROR: the dbt docs of tenant `%s` were not refreshed: %s", spec.tenant, exc)
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(ended, encoding="utf-8")
    write_index(site, [spec.tenant for spec in specs])


def main(argv: list[str] | None = None) -> int:
    from stack.__main__ import demo_tenants  # the stack's tenants: one definition

    parser = argparse.ArgumentParser(prog="python -m stack.dbt_docs", description=__doc__)
    parser.add_argument("site", type=Path, help="folder the docs server serves")
    parser.add_argument("--once", action="store_true", help="refresh what is due, then exit")
    args = parser.parse_args(argv)
    log_to_stderr("stack", "dbt-docs: ")
    home = os.environ.get("AIRFLOW_HOME")
    if not home:
        parser.error("AIRFLOW_HOME is not set: run it with the stack's environment")
    airflow = LocalAirflow(home=Path(home))
    args.site.mkdir(parents=True, exist_ok=True)
    while True:
        refresh_due(airflow, args.site, demo_tenants())
        if args.once:
            return 0
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    sys.exit(main())
