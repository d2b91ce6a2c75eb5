"""Under the real scheduler, a task past its execution timeout ends, leaves no container behind,
says it timed out, and the next run goes green.

The deployment is `make up`'s: `stack.local_airflow` prepares the home, supervisord runs the API
server, scheduler, DAG processor and triggerer, and runs are triggered like a user would. The demo
tenant's source tables load within a 40 s execution timeout; a session holding the source's
`region` table makes its extract wait past it.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import psycopg
import pytest
import yaml

from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import TenantPlan, plan_tenant, runner_deadline
from stack.local_airflow import LocalAirflow
from stack.supervisor import Supervisor, ensure_installed
from tests.kit.databases import Database, Server, fresh_database
from tests.kit.docker import runner_image
from tests.kit.notifications import Mailbox, smtp_server
from tests.kit.paths import ROOT
from tests.kit.tenants import init_test_roles, on_test_databases
from tests.kit.tpch import seed_tpch_into

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("docker") is None, reason="no `docker` CLI: the runners are containers"
    ),
]
TENANT_FILE = ROOT / "orchestration" / "tenants" / "acme.yaml"
AIRFLOW_PORT = 28095  # below the ephemeral range, apart from `make up` and its test
EXTRACT_TIMEOUT_S = 40


@dataclass
class Scheduled:
    source: Database
    warehouse: Database
    plan: TenantPlan
    airflow: LocalAirflow
    mailbox: Mailbox


def tenant_yaml(source: Database, warehouse: Database) -> str:
    """The demo tenant on the test databases, its extracts bound to 40 s, no retries, and a
    schedule that starts next year: the scheduler creates no run of its own, only the runs
    triggered here run."""
    tenant = on_test_databases(TENANT_FILE, source, warehouse)
    tenant["schedule"] = {"cron": "@yearly", "start_date": date(date.today().year + 1, 1, 1)}
    tenant["sources"][0]["execution_timeout"] = f"{EXTRACT_TIMEOUT_S}s"
    tenant["retries"] = {"count": 0}
    # The test holds `region` with an ACCESS EXCLUSIVE lock, which gives its transaction an xid;
    # a cdc table's first run (creating its slot) waits for every such transaction to end, so
    # here the tables read a cursor instead and only `region` waits.
    for table in tenant["sources"][0]["tables"]:
        if table.get("mode") == "cdc":
            table.update(mode="incremental", cursor="updated_at", strategy="merge")
    return yaml.safe_dump(tenant, sort_keys=False)


@pytest.fixture(scope="module")
def scheduled(
    pg_servers: tuple[Server, Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Scheduled]:
    source_server, warehouse_server = pg_servers
    source_gen, warehouse_gen = fresh_database(source_server), fresh_database(warehouse_server)
    source, warehouse = next(source_gen), next(warehouse_gen)
    seed_tpch_into(source, 0.01)
    root = tmp_path_factory.mktemp("scheduled")
    tenants = root / "tenants"
    tenants.mkdir()
    (tenants / TENANT_FILE.name).write_text(tenant_yaml(source, warehouse), encoding="utf-8")
    spec = load_tenant(tenants / TENANT_FILE.name)
    init_test_roles([spec], warehouse)
    plan = plan_tenant(spec)
    for image in {task.image.rsplit("/", 1)[-1] for task in plan.tasks}:
        runner_image(image.split("-runner:")[0])  # built here when `make images` has not
    airflow = LocalAirflow(
        home=root / "home", tenants=tenants, dags=root / "dags", port=AIRFLOW_PORT
    )
    passwords = {"warehouse": warehouse.server.password, "sources": source.server.password}
    ensure_installed()
    supervisor = Supervisor(root / "state", airflow.env())
    with smtp_server() as mailbox:
        airflow.prepare(airflow.database_variables(spec, **passwords))
        airflow.airflow("connections", "add", "smtp_default", "--conn-json", mailbox.connection())
        supervisor.start()
        try:
            airflow.wait_healthy(240)
            yield Scheduled(source, warehouse, plan, airflow, mailbox)
        finally:
            supervisor.stop()
    for generator in (source_gen, warehouse_gen):
        next(generator, None)


def runner_containers(tenant: str) -> list[str]:
    found = subprocess.run(
        ["docker", "ps", "-a", "-q", "--filter", f"label=datakit/tenant={tenant}"],
        capture_output=True,
        text=True,
        check=True,
    )
    return found.stdout.split()


def wait_for_subjects(mailbox: Mailbox, timeout_s: float, count: int = 2) -> set[str]:
    deadline = time.monotonic() + timeout_s
    while len(mailbox.messages) < count and time.monotonic() < deadline:
        time.sleep(1)
    return {message["Subject"] for _, _, message in mailbox.messages}


def test_a_task_past_its_timeout_ends_leaves_nothing_and_the_next_run_is_green(
    scheduled: Scheduled,
) -> None:
    airflow, dag_id = scheduled.airflow, scheduled.plan.dag_id
    blocker = psycopg.connect(
        host="127.0.0.1",
        port=scheduled.source.server.port,
        dbname=scheduled.source.name,
        user=scheduled.source.server.user,
        password=scheduled.source.server.password,
        application_name="holds-region",
    )
    blocker.execute("lock table region in access exclusive mode")  # until the rollback below
    try:
        airflow.trigger(dag_id, "timed_out_1")
        run = airflow.wait_for_run(dag_id, "timed_out_1", timeout_s=600)
    finally:
        blocker.rollback()
        blocker.close()
    states = run.task_states()
    assert run.state == "failed", states
    assert states["extract__erp_region"] == "failed", states
    others = ("extract__erp_nation", "extract__erp_lineitem")
    assert {states[t] for t in others} == {"success"}, states
    assert states["dbt_build__silver"] == "upstream_failed", states
    region = run.tasks["extract__erp_region"]
    assert region.duration_s is not None
    assert runner_deadline(EXTRACT_TIMEOUT_S) <= region.duration_s < EXTRACT_TIMEOUT_S + 30
    assert runner_containers("acme") == []  # every runner container is gone
    # The runner stopped itself before Airflow's timeout, and said why, in the task's log.
    log = next((airflow.home / "logs").rglob("*task_id=extract__erp_region*/attempt=1.log"))
    assert "past its execution timeout" in log.read_text(errors="replace")
    # Nothing of the timed-out table was committed.
    assert scheduled.warehouse.execute("select to_regclass('bronze_erp.region')") == [(None,)]
    # The task's own notice says it timed out; the run's comes from the DAG processor, later.
    assert wait_for_subjects(scheduled.mailbox, 120) == {
        "[datakit] acme__elt: extract__erp_region timed out",
        "[datakit] acme__elt failed",
    }

    airflow.trigger(dag_id, "green_2")
    green = airflow.wait_for_run(dag_id, "green_2", timeout_s=900)
    assert green.state == "success", green.task_states()
    assert scheduled.warehouse.execute("select count(*) from bronze_erp.region") == [(5,)]
    assert runner_containers("acme") == []
