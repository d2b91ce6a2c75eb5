"""Real Airflow runs the generated tenant DAG with DockerOperator and the built runner images.

The module sets up what a local deployment has (README of `orchestration`, "Running the DAGs
locally"): a TPC-H source and an empty warehouse on the test servers, a copy of the demo tenant
file pointed at them, its generated DAG file, a SQLite `AIRFLOW_HOME` with the tenant's pools, the
passwords as `AIRFLOW_VAR_…` variables and the images under the tenant's registry name. Airflow
runs in a subprocess (`airflow dags test`), so this process keeps a clean environment; the test
reads task states and XComs from Airflow's SQLite database afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from datakit_orchestration.adapters.secrets import variable_name
from datakit_orchestration.dagfiles import pools, sync_dag_files
from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import SecretRef, TenantPlan, plan_tenant
from demo.change_batch import ChangeBatch, apply_change_batch
from demo.seed_tpch import seed_tpch
from tests.conftest import ROOT, Database, Server, fresh_database
from tests.contract.docker import runner_image
from tests.contract.test_dbt_image import GOLD_PRICING_SUMMARY, PRICING_SUMMARY_ON_SOURCE

AIRFLOW = Path(sys.executable).parent / "airflow"

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        shutil.which("docker") is None, reason="no `docker` CLI: the runners are containers"
    ),
]
TENANT_FILE = ROOT / "orchestration" / "tenants" / "acme.yaml"
RUN_TIMEOUT_S = 1200


@dataclass
class Deployment:
    """One local Airflow deployment of the demo tenant, pointed at the test databases."""

    source: Database
    warehouse: Database
    plan: TenantPlan
    env: dict[str, str]
    home: Path
    runs: dict[str, DagRun] = field(default_factory=dict)

    def airflow(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(AIRFLOW), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        assert proc.returncode == 0, (
            f"`airflow {' '.join(args)}` exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout[-6000:]}\nstderr:\n{proc.stderr[-6000:]}"
        )
        return proc

    def run_dag(self, logical_date: str) -> DagRun:
        started = time.monotonic()
        proc = subprocess.run(
            [str(AIRFLOW), "dags", "test", self.plan.dag_id, logical_date],
            env=self.env, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
        )  # fmt: skip
        run = self.read_run(logical_date, proc, time.monotonic() - started)
        self.runs[logical_date] = run
        return run

    def read_run(
        self, logical_date: str, proc: subprocess.CompletedProcess[str], seconds: float
    ) -> DagRun:
        output = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        with sqlite3.connect(self.home / "airflow.db") as db:
            found = db.execute(
                "select run_id, state from dag_run where dag_id = ? and logical_date like ?",
                (self.plan.dag_id, f"{logical_date}%"),
            ).fetchall()
            assert len(found) == 1, f"no single DAG run for {logical_date}: {found}\n{output}"
            run_id, state = found[0]
            states = dict(
                db.execute(
                    "select task_id, state from task_instance where dag_id = ? and run_id = ?",
                    (self.plan.dag_id, run_id),
                ).fetchall()
            )
            xcoms = {
                task_id: json.loads(value) if isinstance(value, str | bytes) else value
                for task_id, value in db.execute(
                    "select task_id, value from xcom "
                    "where dag_id = ? and run_id = ? and key = 'return_value'",
                    (self.plan.dag_id, run_id),
                ).fetchall()
            }
        return DagRun(run_id, state, states, xcoms, output, seconds)


@dataclass
class DagRun:
    run_id: str
    state: str
    task_states: dict[str, str]
    xcoms: dict[str, Any]
    output: str
    seconds: float

    def result(self, task_id: str) -> dict[str, Any]:
        """The task's XCom: the runner's RunResult (DockerOperator pushes it as a JSON line)."""
        assert task_id in self.xcoms, f"no XCom from `{task_id}`\n{self.tail()}"
        value = self.xcoms[task_id]
        result: dict[str, Any] = json.loads(value) if isinstance(value, str) else value
        return result

    def tail(self, chars: int = 12000) -> str:
        return self.output[-chars:]


def tenant_yaml(source: Database, warehouse: Database) -> str:
    """The demo tenant file with its databases replaced by the test databases."""
    tenant = yaml.safe_load(TENANT_FILE.read_text(encoding="utf-8"))
    sections = [(tenant["warehouse"], warehouse), *((s, source) for s in tenant["sources"])]
    for section, db in sections:
        section.update(host="127.0.0.1", port=db.server.port, dbname=db.name, user=db.server.user)
    return yaml.safe_dump(tenant, sort_keys=False)


def tag_images(plan: TenantPlan) -> None:
    """The tenant's images are `<registry>/etl/<tech>-runner:<version>`; there is no registry
    here, so the locally built images get that name too (DockerOperator pulls only when the image
    is missing locally, `force_pull` being off)."""
    for image in sorted({task.image for task in plan.tasks}):
        tech_and_version = image.rsplit("/", 1)[-1]  # <tech>-runner:<version>
        tech = tech_and_version.split("-runner:")[0]
        local = runner_image(tech)
        assert local.endswith(tech_and_version), f"tenant wants {image}, built {local}"
        subprocess.run(["docker", "tag", local, image], check=True)


def airflow_env(home: Path, dags: Path, plan: TenantPlan, source: Database,
                warehouse: Database) -> dict[str, str]:  # fmt: skip
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DK_", "DATAKIT"))}
    env = {
        **base,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
        "DATAKIT_RUNTIME": "docker",
    }
    spec = load_tenant(dags.parent / "tenants" / f"{plan.tenant}.yaml")
    passwords: list[tuple[SecretRef, str]] = [
        (SecretRef(spec.warehouse.password_secret.name, spec.warehouse.password_secret.key),
         warehouse.server.password),
        *((SecretRef(s.password_secret.name, s.password_secret.key), source.server.password)
          for s in spec.sources),
    ]  # fmt: skip
    for ref, password in passwords:
        env[f"AIRFLOW_VAR_{variable_name(plan.tenant, ref).upper()}"] = password
    return env


@pytest.fixture(scope="module")
def deployment(
    pg_servers: tuple[Server, Server], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    source_server, warehouse_server = pg_servers
    source_gen, warehouse_gen = fresh_database(source_server), fresh_database(warehouse_server)
    source, warehouse = next(source_gen), next(warehouse_gen)
    seed_tpch(host="127.0.0.1", port=source_server.port, dbname=source.name,
              user=source_server.user, password=source_server.password, scale=0.01)  # fmt: skip

    root = tmp_path_factory.mktemp("airflow-e2e")
    tenants, dags, home = root / "tenants", root / "dags", root / "home"
    tenants.mkdir()
    home.mkdir()
    (tenants / TENANT_FILE.name).write_text(tenant_yaml(source, warehouse), encoding="utf-8")
    sync_dag_files(tenants, dags, check=False)
    plan = plan_tenant(load_tenant(tenants / TENANT_FILE.name))
    tag_images(plan)

    deployment = Deployment(
        source, warehouse, plan, airflow_env(home, dags, plan, source, warehouse), home
    )
    deployment.airflow("db", "migrate")
    pools_file = root / "pools.json"
    pools_file.write_text(json.dumps(pools(tenants)), encoding="utf-8")
    deployment.airflow("pools", "import", str(pools_file))
    deployment.airflow("dags", "reserialize")  # parse the DAG folder into the database
    errors = deployment.airflow("dags", "list-import-errors", "-o", "json")
    assert json.loads(last_line(errors.stdout, "[]")) == [], errors.stdout
    yield deployment
    for generator in (source_gen, warehouse_gen):
        next(generator, None)
    shutil.rmtree(root, ignore_errors=True)


def last_line(text: str, default: str) -> str:
    """The CLI's JSON output is its last line (Airflow logs warnings to stdout before it)."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else default


def extract_tasks(plan: TenantPlan) -> list[str]:
    return [task.task_id for task in plan.tasks if task.group == "bronze"]


def assert_run_succeeded(deployment: Deployment, run: DagRun) -> None:
    wanted = {task.task_id for task in deployment.plan.tasks}
    assert run.state == "success", f"DAG run is {run.state}: {run.task_states}\n{run.tail()}"
    assert set(run.task_states) == wanted, run.task_states
    not_done = {t: s for t, s in run.task_states.items() if s not in ("success", "skipped")}
    assert not not_done, f"tasks not successful: {not_done}\n{run.tail()}"
    # Only an extract with nothing to do (exit 99) may be skipped; dbt always runs.
    skipped = {t for t, s in run.task_states.items() if s == "skipped"}
    assert skipped <= set(extract_tasks(deployment.plan)), run.task_states


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
        if run.task_states[task_id] == "skipped":
            continue
        result = run.result(task_id)
        assert isinstance(result, dict) and "run_id" in result, (
            f"the XCom of `{task_id}` is not a RunResult: {result!r}"
        )
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
        len(batch.new_orders) + len(batch.changed_orders), len(batch.deleted_orders)
    )  # fmt: skip
    assert (tables["lineitem"]["rows_read"], tables["lineitem"]["rows_deleted"]) == (
        batch.new_lines, batch.deleted_lines
    )  # fmt: skip
    assert_gold_equals_source(deployment)
