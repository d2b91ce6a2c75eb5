"""A local Airflow deployment of tenant DAGs, as `make demo` and the end-to-end test run them.

What it sets up is what the orchestration README's "Running the DAGs locally" describes: an
`AIRFLOW_HOME` with a SQLite metadata database, the tenants' generated DAG files, their pools,
the Docker runtime, the tenants' secrets as `AIRFLOW_VAR_…` variables (values never in argv), and
the runner images under the names the tenant files pin. Airflow always runs as a subprocess
(`airflow dags test`), so the caller's process never imports or configures Airflow; states,
durations and XComs are read back from the metadata database afterwards.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from datakit_orchestration.adapters.secrets import variable_name
from datakit_orchestration.dagfiles import pools, sync_dag_files
from datakit_orchestration.loader import load_tenant
from datakit_orchestration.plan import SecretRef, TenantPlan
from datakit_orchestration.spec import SecretRef as SecretRefSpec
from datakit_orchestration.spec import TenantSpec

AIRFLOW = Path(sys.executable).parent / "airflow"
RUN_TIMEOUT_S = 3600


class AirflowCommandFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class TaskRun:
    task_id: str
    state: str | None
    duration_s: float | None
    xcom: Any  # the runner's RunResult (a JSON object) for a task that finished


@dataclass(frozen=True)
class DagRun:
    dag_id: str
    run_id: str
    state: str
    tasks: dict[str, TaskRun]
    output: str  # what `airflow dags test` printed, for diagnosis
    seconds: float

    def task_states(self) -> dict[str, str | None]:
        return {task_id: task.state for task_id, task in self.tasks.items()}

    def result(self, task_id: str) -> dict[str, Any]:
        """The RunResult the task pushed as its XCom (a JSON object under both runtimes)."""
        xcom = self.tasks[task_id].xcom if task_id in self.tasks else None
        if not isinstance(xcom, dict):
            raise AssertionError(
                f"the XCom of `{task_id}` is not a RunResult object: {xcom!r}\n{self.tail()}"
            )
        return xcom

    def tail(self, chars: int = 12000) -> str:
        return self.output[-chars:]


def database_passwords(spec: TenantSpec, warehouse: str, sources: str) -> dict[SecretRef, str]:
    """The tenant's database passwords by secret reference: `warehouse` for the warehouse and
    `sources` for every source (the demo and the tests have one source server)."""

    def ref(secret: SecretRefSpec) -> SecretRef:
        return SecretRef(secret.name, secret.key)

    found = {ref(s.password_secret): sources for s in spec.sources}
    found[ref(spec.warehouse.password_secret)] = warehouse
    return found


def tenant_secret_refs(plan: TenantPlan) -> list[SecretRef]:
    """Every secret the tenant's tasks read, once each."""
    return sorted({s.secret for task in plan.tasks for s in task.secrets}, key=str)


class LocalAirflow:
    """One `AIRFLOW_HOME` running the DAGs of the tenant files in `tenants` with Docker."""

    def __init__(self, home: Path, tenants: Path, dags: Path) -> None:
        self.home, self.tenants, self.dags = home, tenants, dags
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DK_", "DATAKIT"))
        }
        self.env = {
            **inherited,
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
            "DATAKIT_RUNTIME": "docker",
        }

    def spec(self, tenant: str) -> TenantSpec:
        return load_tenant(self.tenants / f"{tenant}.yaml")

    def set_secrets(self, plan: TenantPlan, values: Mapping[SecretRef, str]) -> None:
        """The tenant's secrets as Airflow Variables (environment), as the Docker adapter reads
        them; every secret the tenant's tasks need must be given."""
        missing = [ref for ref in tenant_secret_refs(plan) if ref not in values]
        if missing:
            names = ", ".join(f"`{ref.name}/{ref.key}`" for ref in missing)
            raise ValueError(f"no value for the secrets {names} of tenant `{plan.tenant}`")
        for ref, value in values.items():
            self.env[f"AIRFLOW_VAR_{variable_name(plan.tenant, ref).upper()}"] = value

    def airflow(self, *args: str, timeout: float = 600) -> str:
        proc = subprocess.run(
            [str(AIRFLOW), *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise AirflowCommandFailed(
                f"`airflow {' '.join(args)}` exited {proc.returncode} (AIRFLOW_HOME={self.home})"
                f"\nstdout:\n{proc.stdout[-6000:]}\nstderr:\n{proc.stderr[-6000:]}"
            )
        return proc.stdout

    def prepare(self) -> None:
        """DAG files, metadata database, pools; then parse the DAG folder and fail on any
        import error, naming the file and the loader's message."""
        self.home.mkdir(parents=True, exist_ok=True)
        sync_dag_files(self.tenants, self.dags, check=False)
        self.airflow("db", "migrate")
        pools_file = self.home / "pools.json"
        pools_file.write_text(json.dumps(pools(self.tenants)), encoding="utf-8")
        self.airflow("pools", "import", str(pools_file))
        self.airflow("dags", "reserialize")  # parse the DAG folder into the database
        errors = json.loads(_last_line(self.airflow("dags", "list-import-errors", "-o", "json")))
        if errors:
            raise AirflowCommandFailed(
                "the DAG folder has import errors:\n"
                + "\n".join(json.dumps(error) for error in errors)
            )

    def run_dag(self, dag_id: str, logical_date: str) -> DagRun:
        """`airflow dags test <dag_id> <logical_date>`, then what the database recorded."""
        started = time.monotonic()
        proc = subprocess.run(
            [str(AIRFLOW), "dags", "test", dag_id, logical_date],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        output = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return self._read_run(dag_id, logical_date, output, time.monotonic() - started)

    def _read_run(self, dag_id: str, logical_date: str, output: str, seconds: float) -> DagRun:
        with sqlite3.connect(self.home / "airflow.db") as db:
            found = db.execute(
                "select run_id, state from dag_run where dag_id = ? and logical_date like ?",
                (dag_id, f"{logical_date}%"),
            ).fetchall()
            if len(found) != 1:
                raise AirflowCommandFailed(
                    f"no single run of `{dag_id}` for {logical_date}: {found}\n{output[-6000:]}"
                )
            run_id, state = found[0]
            xcoms = {
                task_id: json.loads(value) if isinstance(value, str | bytes) else value
                for task_id, value in db.execute(
                    "select task_id, value from xcom "
                    "where dag_id = ? and run_id = ? and key = 'return_value'",
                    (dag_id, run_id),
                ).fetchall()
            }
            tasks = {
                task_id: TaskRun(task_id, task_state, _seconds(start, end), xcoms.get(task_id))
                for task_id, task_state, start, end in db.execute(
                    "select task_id, state, start_date, end_date from task_instance "
                    "where dag_id = ? and run_id = ?",
                    (dag_id, run_id),
                ).fetchall()
            }
        return DagRun(dag_id, run_id, state, tasks, output, seconds)


def tag_images(plan: TenantPlan, local_image: Callable[[str], str]) -> None:
    """Give the locally built images the names the tenant pins
    (`<registry>/etl/<tech>-runner:<version>`), so DockerOperator finds them without pulling
    (it pulls only when the image is missing, `force_pull` being off)."""
    for image in sorted({task.image for task in plan.tasks}):
        tech_and_version = image.rsplit("/", 1)[-1]  # <tech>-runner:<version>
        local = local_image(tech_and_version.split("-runner:")[0])
        if not local.endswith(tech_and_version):
            raise ValueError(
                f"tenant `{plan.tenant}` pins `{image}`, but the local image is `{local}`; "
                "align the tenant's runner_version with runners/<tech>/VERSION"
            )
        subprocess.run(["docker", "tag", local, image], check=True)


def _seconds(start: str | None, end: str | None) -> float | None:
    if not (start and end):
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _last_line(text: str) -> str:
    """The CLI's JSON output is its last line (Airflow logs warnings to stdout before it)."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else "[]"
