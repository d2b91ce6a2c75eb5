"""A local Airflow deployment of the tenant DAGs, as `make up`, `make demo` and the end-to-end
test run it: the one place that prepares it.

A home (`AIRFLOW_HOME`) has a SQLite metadata database, the DAG files of the tenant files, every
tenant's pools, the tenants' secrets as Variables in the metadata database, the Docker runtime, the
runner images under the names the tenant files pin, and the FAB auth manager's users: `admin` and
one per tenant that sees only its tenant's DAGs (`stack.airflow_access`). Airflow always runs as a
subprocess (the CLI, `airflow dags test`, or the daemons under supervisord), with the environment
of `env()`, so the caller's process never configures Airflow; states, durations and XComs of a
test run are read back from the metadata database.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import sqlite3
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from datakit_orchestration.dagfiles import pools, sync_dag_files
from datakit_orchestration.loader import load_tenants
from datakit_orchestration.plan import (
    OPENLINEAGE_URL_VARIABLE,
    SecretRef,
    plan_tenant,
    variable_name,
)
from datakit_orchestration.spec import HttpSourceSpec, SourceSpec, TenantSpec
from demo.market_api import DEMO_TOKEN as DEMO_API_TOKEN
from stack import ROOT, StackError
from stack.airflow_access import access_request, tenant_access
from stack.tenant_roles import role_passwords

AIRFLOW = ROOT / ".venv" / "bin" / "airflow"
PYTHON = ROOT / ".venv" / "bin" / "python"
FAB_AUTH_MANAGER = "airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager"
TENANTS = ROOT / "orchestration" / "tenants"
DAGS = ROOT / "orchestration" / "dags"
COMPOSE_FILE = ROOT / "stack" / "docker-compose.yml"
HEALTH_PARTS = ("metadatabase", "scheduler", "dag_processor", "triggerer")
RUN_TIMEOUT_S = 3600
# Where Airflow's OpenLineage provider and the runners it launches send their events (HTTP, e.g.
# Marquez's `http://127.0.0.1:5000`); unset: the provider is off and so are the runners' events.
OPENLINEAGE_URL_SETTING = "DK_OPENLINEAGE_URL"
LINEAGE_NAMESPACE = "datakit"

log = logging.getLogger(__name__)


class AirflowCommandFailed(StackError):
    pass


def demo_password(service: str) -> str:
    """The password of demo database `service` (`source-db`, `warehouse-db`): the default written
    once in stack/docker-compose.yml, unless the variable compose reads there is set."""
    services = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]
    setting = str(services[service]["environment"]["POSTGRES_PASSWORD"])
    found = re.fullmatch(r"\$\{(\w+):-(.+)\}", setting)
    if not found:
        raise StackError(
            f"{COMPOSE_FILE}: `{service}` must set POSTGRES_PASSWORD as `${{VARIABLE:-default}}`, "
            f"not `{setting}`"
        )
    return os.environ.get(found[1]) or found[2]


def tag_images(tenants: Path) -> None:
    """Tag each locally built `etl/<tech>-runner:<version>` as every
    `<registry>/etl/<tech>-runner:<version>` a valid tenant file pins, so DockerOperator finds it
    without pulling (it pulls only a missing image). Images not built are reported, not fatal: the
    DAGs load, their tasks fail until `make images` has run."""
    specs, _errors = load_tenants(tenants)
    # A digest pin (DK_IMAGE_LOCK) names a released image: pulled, never tagged from a local build.
    pinned = sorted({t.image for s in specs for t in plan_tenant(s).tasks if "@" not in t.image})
    missing = []
    for image in pinned:
        local = "etl/" + image.rsplit("/etl/", 1)[-1]
        inspect = subprocess.run(["docker", "image", "inspect", local], capture_output=True)
        if inspect.returncode != 0:
            missing.append(local)
            continue
        subprocess.run(["docker", "tag", local, image], check=True)
        log.info("tagged %s as %s", local, image)
    if missing:
        log.warning(
            "WARNING: not built, so not tagged: %s. The DAGs load, but their tasks need the "
            "images: run `make images`, then `make up`.",
            ", ".join(sorted(set(missing))),
        )


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


@dataclass(frozen=True)
class LocalAirflow:
    """One `AIRFLOW_HOME` running the DAGs of the tenant files in `tenants` with Docker; its API
    server (when one runs, see stack/supervisord.conf) listens on 127.0.0.1:`port`."""

    home: Path
    tenants: Path = TENANTS
    dags: Path = DAGS
    port: int = 8080
    parallelism: int = 4  # LocalExecutor task slots: a laptop's share
    openlineage_url: str = field(
        default_factory=lambda: os.environ.get(OPENLINEAGE_URL_SETTING, "")
    )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def password_file(self) -> Path:
        """User → password of the Airflow users (`grant_access`), readable by its owner only."""
        return self.home / "user_passwords.json"

    def env(self) -> dict[str, str]:
        """The environment of every Airflow process and command of this home. It holds no secret:
        the JWT secret and Fernet key are generated into `airflow.cfg` by the first command, and the
        tenants' secrets are Variables in the metadata database. None of the caller's `AIRFLOW…`
        (`AIRFLOW_VAR_…` above all) or `DATAKIT…` variables is passed on: the home's settings are
        these and its `airflow.cfg`. The caller's `DK_…` settings (`DK_IMAGE_LOCK`) pass."""
        inherited = {
            k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DATAKIT"))
        }
        return (
            inherited
            | {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__UNIT_TEST_MODE": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(self.parallelism),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                "AIRFLOW__CORE__AUTH_MANAGER": FAB_AUTH_MANAGER,
                "DATAKIT_RUNTIME": "docker",
            }
            | self.lineage_env()
        )

    def lineage_env(self) -> dict[str, str]:
        """Airflow's OpenLineage provider: HTTP to `openlineage_url` in namespace `datakit`, or
        off. The runners' events go to the same URL (`prepare` sets it as their Variable) and
        name the provider's task run as their parent."""
        if not self.openlineage_url:
            return {"AIRFLOW__OPENLINEAGE__DISABLED": "True"}
        transport = {"type": "http", "url": self.openlineage_url, "timeout": 5}
        return {
            "AIRFLOW__OPENLINEAGE__DISABLED": "False",
            "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(transport),
            "AIRFLOW__OPENLINEAGE__NAMESPACE": LINEAGE_NAMESPACE,
        }

    def airflow(self, *args: str, timeout: float = 600) -> str:
        proc = subprocess.run(
            [str(AIRFLOW), *args], env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if proc.returncode != 0:
            raise AirflowCommandFailed(
                f"`airflow {' '.join(args)}` exited {proc.returncode} (AIRFLOW_HOME={self.home})"
                f"\nstdout:\n{proc.stdout[-6000:]}\nstderr:\n{proc.stderr[-6000:]}"
            )
        return proc.stdout

    def database_variables(
        self, spec: TenantSpec, *, warehouse: str, sources: str, apis: str = DEMO_API_TOKEN
    ) -> dict[str, str]:
        """Airflow Variable → value of the tenant's database passwords: `warehouse` for its one
        warehouse login, or its roles' demo passwords (`stack.tenant_roles`), `sources` for
        every database source (the demo and the tests have one source server), and `apis` for
        the secret of every HTTP API source (the demo market API's token). Every secret the
        tenant's tasks read must be one of them."""
        values = {
            SecretRef(s.password_secret.name, s.password_secret.key): sources
            for s in spec.sources
            if isinstance(s, SourceSpec)
        }
        values |= {
            SecretRef(s.api.auth.secret.name, s.api.auth.secret.key): apis
            for s in spec.sources
            if isinstance(s, HttpSourceSpec) and s.api.auth.secret is not None
        }
        if spec.warehouse.roles:  # the tenant's own roles, with the demo's passwords
            values |= role_passwords(spec)
        else:
            login = spec.warehouse.login("loader")
            values[SecretRef(login.password_secret.name, login.password_secret.key)] = warehouse
        plan = plan_tenant(spec)
        read = {s.secret for task in plan.tasks for s in task.secrets}
        missing = read - set(values)
        if missing:
            names = ", ".join(f"`{ref.name}/{ref.key}`" for ref in sorted(missing, key=str))
            raise StackError(
                f"tenant `{spec.tenant}` reads secrets {names} that are not database passwords; "
                "set them as Airflow Variables yourself (orchestration/README.md, Secrets)"
            )
        # Only what a task reads: the reader role's password is for dashboards, not Airflow.
        return {variable_name(plan.tenant, ref): values[ref] for ref in read}

    def prepare(self, variables: Mapping[str, str]) -> None:
        """Make the home ready to run the tenants' DAGs: DAG files in step with the tenant files,
        the metadata database migrated (FAB's tables too), the users and roles (`grant_access`),
        every tenant's pools, `variables` (the tenants' secrets) and the runner images tagged as
        the tenants pin them. Twice is harmless."""
        self.home.mkdir(parents=True, exist_ok=True)
        for problem in sync_dag_files(self.tenants, self.dags, check=False):
            log.info("DAG files: %s (rewritten)", problem)
        self.airflow("db", "migrate")
        self.grant_access()
        self._import("pools", pools(self.tenants))
        self._import("variables", {**variables, OPENLINEAGE_URL_VARIABLE: self.openlineage_url})
        log.info("airflow: the pools of every tenant and %d Variables are set", len(variables))
        tag_images(self.tenants)

    def grant_access(self) -> list[str]:
        """`admin` (all DAGs) and, per tenant, a role `tenant_<tenant>` and a user `<tenant>` that
        see, trigger and read the logs of that tenant's DAGs only (`stack.airflow_access`), with
        the passwords of `password_file`; returns what changed (nothing the second time).
        Passwords reach the FAB program on stdin, never argv."""
        access = tenant_access(self.tenants)
        request = access_request(access, self.user_passwords(access.users))
        proc = subprocess.run(
            [str(PYTHON), "-m", "stack.airflow_access"],
            input=request,
            env=self.env(),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if proc.returncode != 0:
            raise AirflowCommandFailed(
                f"`python -m stack.airflow_access` exited {proc.returncode} "
                f"(AIRFLOW_HOME={self.home})\nstdout:\n{proc.stdout[-6000:]}"
                f"\nstderr:\n{proc.stderr[-6000:]}"
            )
        changes: list[str] = json.loads(_last_line(proc.stdout))
        for change in changes:
            log.info("airflow access: %s", change)
        log.info("airflow: users %s (passwords in %s)", ", ".join(access.users), self.password_file)
        return changes

    def passwords(self) -> dict[str, str]:
        """User → password, as `password_file` holds them (empty before `grant_access`)."""
        if not self.password_file.exists():
            return {}
        known: dict[str, str] = json.loads(self.password_file.read_text(encoding="utf-8"))
        return known

    def user_passwords(self, users: Iterable[str]) -> dict[str, str]:
        """Each of `users`' password: kept from `password_file`, generated there for a new user.
        The file is written whole through a temporary file, readable by its owner only; a user
        not in `users` leaves it."""
        known = self.passwords()
        wanted = {user: known.get(user) or secrets.token_urlsafe(18) for user in users}
        if wanted != known:
            fd, name = tempfile.mkstemp(prefix=".user_passwords-", suffix=".json", dir=self.home)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(wanted, handle, indent=2)
            os.replace(name, self.password_file)
        return wanted

    def token(self, user: str) -> str:
        """A JWT for the REST API (`Authorization: Bearer …`): `user` logs in at `/auth/token`
        with its password from `password_file`."""
        password = self.passwords()[user]
        request = urllib.request.Request(
            f"{self.url}/auth/token",
            data=json.dumps({"username": user, "password": password}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as reply:
            token: str = json.load(reply)["access_token"]
        return token

    def _import(self, kind: str, content: Mapping[str, Any]) -> None:
        """`airflow <kind> import` of `content`, from a file only its owner can read (mkstemp),
        deleted right after: the values never reach argv, the output or a file left behind."""
        fd, name = tempfile.mkstemp(prefix=f".{kind}-", suffix=".json", dir=self.home)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(content, handle)
            self.airflow(kind, "import", name)
        finally:
            os.unlink(name)

    def check_dags(self) -> None:
        """Parse the DAG folder into the metadata database; fail on any import error, naming the
        file and the loader's message."""
        self.airflow("dags", "reserialize")
        errors = json.loads(_last_line(self.airflow("dags", "list-import-errors", "-o", "json")))
        if errors:
            raise AirflowCommandFailed(
                "the DAG folder has import errors:\n"
                + "\n".join(json.dumps(error) for error in errors)
            )

    def health(self) -> dict[str, str]:
        """Each part's status, as Airflow reports it; `unreachable` when the API does not answer."""
        try:
            with urllib.request.urlopen(f"{self.url}/api/v2/monitor/health", timeout=5) as reply:
                body = json.load(reply)
        except (OSError, ValueError):
            return dict.fromkeys(HEALTH_PARTS, "unreachable")
        return {part: str((body.get(part) or {}).get("status")) for part in HEALTH_PARTS}

    def wait_healthy(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (status := self.health()) and set(status.values()) != {"healthy"}:
            if time.monotonic() > deadline:
                parts = ", ".join(f"{part}: {value}" for part, value in status.items())
                raise StackError(
                    f"Airflow is not healthy after {seconds:.0f} s at "
                    f"{self.url}/api/v2/monitor/health ({parts})"
                )
            time.sleep(1)

    def trigger(self, dag_id: str, run_id: str) -> None:
        """Queue a run of `dag_id` for the scheduler (the DAG is unpaused first)."""
        self.airflow("dags", "unpause", dag_id)
        self.airflow("dags", "trigger", dag_id, "--run-id", run_id)

    def wait_for_run(self, dag_id: str, run_id: str, timeout_s: float = RUN_TIMEOUT_S) -> DagRun:
        """The run `run_id` once the scheduler has finished it (success or failed)."""
        started = time.monotonic()
        while True:
            with sqlite3.connect(self.home / "airflow.db") as db:
                found = db.execute(
                    "select state from dag_run where dag_id = ? and run_id = ?", (dag_id, run_id)
                ).fetchone()
            if found and found[0] in ("success", "failed"):
                return self._read_run(dag_id, "", "", time.monotonic() - started, run_id=run_id)
            if time.monotonic() - started > timeout_s:
                raise AirflowCommandFailed(
                    f"run `{run_id}` of `{dag_id}` is {found[0] if found else 'not created'} "
                    f"after {timeout_s:.0f} s; see the scheduler's log"
                )
            time.sleep(1)

    def run_dag(self, dag_id: str, logical_date: str) -> DagRun:
        """`airflow dags test <dag_id> <logical_date>`, then what the database recorded."""
        started = time.monotonic()
        proc = subprocess.run(
            [str(AIRFLOW), "dags", "test", dag_id, logical_date],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )
        output = f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        return self._read_run(dag_id, logical_date, output, time.monotonic() - started)

    def _read_run(
        self,
        dag_id: str,
        logical_date: str,
        output: str,
        seconds: float,
        run_id: str | None = None,
    ) -> DagRun:
        """The run of `dag_id` for `logical_date` (or with `run_id`), as the database holds it."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            found = db.execute(
                "select run_id, state from dag_run where dag_id = ? and "
                + ("run_id = ?" if run_id else "logical_date like ?"),
                (dag_id, run_id or f"{logical_date}%"),
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


def _seconds(start: str | None, end: str | None) -> float | None:
    if not (start and end):
        return None
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _last_line(text: str) -> str:
    """The CLI's JSON output is its last line (Airflow logs warnings to stdout before it)."""
    lines = text.strip().splitlines()
    return lines[-1] if lines else "[]"
