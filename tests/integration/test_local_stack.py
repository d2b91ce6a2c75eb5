"""`make up` / `make down` for real: the registry and the demo databases (compose services) and
Airflow (api-server, scheduler, dag-processor, triggerer under supervisord) from the venv, on ports
that do not clash with a running `make up` or `make demo`, then everything stopped again.

Slow (about a minute): Airflow's metadata database is migrated and four processes start.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from stack.local_airflow import LocalAirflow

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "stack" / "docker-compose.yml"
# Ports below Linux's ephemeral range (32768-60999): a client connection's local port can never
# hold them when a server of the stack binds.
AIRFLOW_PORT = int(os.environ.get("DK_TEST_STACK_AIRFLOW_PORT", "28080"))
REGISTRY_ADDR = os.environ.get("DK_TEST_STACK_REGISTRY_ADDR", "127.0.0.1:25500")
SOURCE_PORT, WAREHOUSE_PORT = 25541, 25542
DB_PROJECT = "dk-stack-test"
REGISTRY_PROJECT = f"dk-registry-{REGISTRY_ADDR.rpartition(':')[2]}"
URL = f"http://127.0.0.1:{AIRFLOW_PORT}"
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
DEMO_PASSWORDS = ("erp-demo-password", "warehouse-demo-password")
TENANT_DAGS = {"acme__elt", "globex__elt", "markets__elt"}  # orchestration/tenants/*.yaml

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Stack:
    state: Path
    env: dict[str, str]
    up_output: str

    def make(self, target: str) -> subprocess.CompletedProcess[str]:
        # `-o .venv/.installed`: use the venv as it is; never reinstall it from inside a test.
        return subprocess.run(
            ["make", "--no-print-directory", "-o", ".venv/.installed", target],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=900,
        )

    def status(self) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "stack", "status"],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def pids(self) -> dict[str, int]:
        """Each running Airflow program's pid, as `python -m stack status` reports it."""
        found = re.findall(r"^airflow (\S+): running \(pid (\d+)\)$", self.status(), re.M)
        return {name: int(pid) for name, pid in found}

    def supervisord(self) -> int:
        return int((self.state / "run" / "supervisord.pid").read_text())

    def containers(self) -> list[str]:
        """The containers of the stack's compose projects, running or not."""
        ids = []
        for project in (DB_PROJECT, REGISTRY_PROJECT):
            ids += subprocess.run(
                ["docker", "ps", "-aq", "--filter", f"label=com.docker.compose.project={project}"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout.split()
        return ids


def _docker_engine() -> bool:
    return bool(shutil.which("docker")) and (
        subprocess.run(["docker", "info"], capture_output=True).returncode == 0
    )


def _get(path: str, token: str | None = None) -> Any:
    request = urllib.request.Request(URL + path)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def _token(state: Path) -> str:
    """Log in as the stack's admin with the password `make up` generated into AIRFLOW_HOME."""
    return LocalAirflow(home=state / "airflow", port=AIRFLOW_PORT).token("admin")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if not _docker_engine():
        pytest.skip("no Docker engine answers `docker info`; start one with `make engine`")
    state = tmp_path_factory.mktemp("stack")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "DATAKIT_"))}
    env |= {
        "DK_STACK_DIR": str(state),
        "DK_STACK_AIRFLOW_PORT": str(AIRFLOW_PORT),
        "DK_STACK_DB_PROJECT": DB_PROJECT,
        "DK_DEMO_SOURCE_PORT": str(SOURCE_PORT),
        "DK_DEMO_WAREHOUSE_PORT": str(WAREHOUSE_PORT),
        "DK_REGISTRY_ADDR": REGISTRY_ADDR,
        "DK_REGISTRY_DIR": str(state / "registry"),
        # Prometheus, the metrics exporter, the dbt docs server and the market API, beside Airflow
        "DK_STACK_PROMETHEUS_PORT": "27210",
        "DK_STACK_METRICS_PORT": "27211",
        "DK_STACK_DOCS_PORT": "27212",
        "DK_STACK_MARKET_API_PORT": "27213",
    }
    stack = Stack(state, env, "")
    try:
        up = stack.make("up")
        stack = Stack(state, env, up.stdout + up.stderr)
        assert up.returncode == 0, stack.up_output[-8000:]
        yield stack
    finally:
        stack.make("down")
        for project in (DB_PROJECT, REGISTRY_PROJECT):
            subprocess.run(
                ["docker-compose", "-f", str(COMPOSE_FILE), "-p", project, "down", "-v"],
                capture_output=True,
                timeout=300,
            )


def test_up_reports_where_the_ui_is_and_how_to_log_in(stack: Stack) -> None:
    assert f"Airflow UI   {URL}" in stack.up_output
    password_file = stack.state / "airflow" / "user_passwords.json"
    assert str(password_file) in stack.up_output
    assert "user `admin`" in stack.up_output
    assert "`acme`, `globex`" in stack.up_output  # a user per tenant, seeing its own DAGs only


def test_up_never_shows_the_demo_passwords_nor_leaves_them_in_a_file(stack: Stack) -> None:
    for password in DEMO_PASSWORDS:
        assert password not in stack.up_output
    # The Variables file was deleted; the metadata database holds them encrypted (Fernet).
    files = [path for path in stack.state.rglob("*") if path.is_file() and not path.is_socket()]
    assert any(path.name == "airflow.db" for path in files)
    for path in files:
        content = path.read_bytes()
        for password in DEMO_PASSWORDS:
            assert password.encode() not in content, path


def test_airflow_reports_every_part_healthy(stack: Stack) -> None:
    health = _get("/api/v2/monitor/health")
    for part in ("metadatabase", "scheduler", "dag_processor", "triggerer"):
        assert health[part]["status"] == "healthy", health


def test_the_tenant_dags_are_listed_through_the_rest_api(stack: Stack) -> None:
    token = _token(stack.state)
    # The DAG processor parses the folder on its own schedule after it reports healthy.
    deadline = time.monotonic() + 180
    while True:
        dag_ids = {dag["dag_id"] for dag in _get("/api/v2/dags", token)["dags"]}
        if dag_ids >= TENANT_DAGS or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert dag_ids == TENANT_DAGS
    assert _get("/api/v2/importErrors", token)["import_errors"] == []


def test_the_pools_and_the_demo_tenant_variables_are_set(stack: Stack) -> None:
    token = _token(stack.state)
    pools = {pool["name"]: pool["slots"] for pool in _get("/api/v2/pools", token)["pools"]}
    assert {"acme__erp": 2, "globex__erp": 3}.items() <= pools.items()
    variables = {v["key"] for v in _get("/api/v2/variables", token)["variables"]}
    assert variables == {  # the demo tenants' secrets, their roles' passwords included
        "datakit__acme__acme_erp__password",
        "datakit__acme__acme_warehouse_loader__password",
        "datakit__acme__acme_warehouse_transformer__password",
        "datakit__globex__globex_erp__db_password",
        "datakit__globex__globex_warehouse__loader_password",
        "datakit__globex__globex_warehouse__transformer_password",
        "datakit__markets__markets_api__token",
        "datakit__markets__markets_warehouse__loader_password",
        "datakit__markets__markets_warehouse__transformer_password",
        "datakit_openlineage_url",  # empty: lineage off unless DK_OPENLINEAGE_URL is set
    }


def test_the_tenants_warehouse_roles_own_their_schemas(stack: Stack) -> None:
    """`make up` ran warehouse-init for each tenant of the demo warehouse."""
    with psycopg.connect(
        host="127.0.0.1",
        port=WAREHOUSE_PORT,
        dbname="warehouse",
        user="warehouse",
        password="warehouse-demo-password",
    ) as conn:
        owners = conn.execute(
            "select nspname, pg_get_userbyid(nspowner) from pg_namespace "
            "where nspname in ('bronze_erp', 'gold', 'globex_bronze_erp', 'globex_gold') "
            "order by 1"
        ).fetchall()
    assert owners == [
        ("bronze_erp", "acme_loader"),
        ("globex_bronze_erp", "globex_loader"),
        ("globex_gold", "globex_transformer"),
        ("gold", "acme_transformer"),
    ]


def test_every_port_the_stack_opened_is_on_loopback(stack: Stack) -> None:
    # Airflow's programs (each a process group) and supervisord; the containers' servers.
    groups = {*stack.pids().values(), stack.supervisord()}
    ports = {AIRFLOW_PORT, int(REGISTRY_ADDR.rpartition(":")[2]), SOURCE_PORT, WAREHOUSE_PORT}
    listening = [
        conn
        for conn in psutil.net_connections(kind="inet")
        if conn.status == psutil.CONN_LISTEN
        and ((conn.pid and _pgid(conn.pid) in groups) or conn.laddr.port in ports)
    ]
    assert {conn.laddr.port for conn in listening} >= ports
    assert {conn.laddr.ip for conn in listening} == {"127.0.0.1"}, listening
    # Host networking only: no container of the stack is on a docker network.
    containers = stack.containers()
    assert len(containers) == 3
    modes = subprocess.run(
        ["docker", "inspect", "-f", "{{.HostConfig.NetworkMode}}", *containers],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert modes == ["host"] * 3


def test_up_twice_is_harmless(stack: Stack) -> None:
    before = stack.pids()
    again = stack.make("up")
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-6000:]
    for name in COMPONENTS:
        assert f"airflow {name}: already running (pid {before[name]})" in output
    assert "databases: already running" in output
    assert "registry: already running" in output
    assert stack.pids() == before


def test_down_stops_everything_up_started(stack: Stack) -> None:
    pids = stack.pids()
    assert set(pids) == set(COMPONENTS)
    supervisord = stack.supervisord()
    members = [p.pid for p in psutil.process_iter() if _pgid(p.pid) in set(pids.values())]
    assert len(members) > len(pids)  # workers and API server processes under each leader
    down = stack.make("down")
    output = down.stdout + down.stderr
    assert down.returncode == 0, output[-6000:]
    for name, pid in pids.items():
        assert f"stopped airflow {name} (pid {pid})" in output
    assert f"stopped the databases (compose project {DB_PROJECT}" in output
    assert f"stopped the registry on http://{REGISTRY_ADDR}" in output
    assert not [pid for pid in [*members, supervisord] if _alive(pid)]
    assert stack.pids() == {}
    with pytest.raises(OSError):
        urllib.request.urlopen(URL + "/api/v2/monitor/health", timeout=5)
    running = subprocess.run(
        ["docker", "ps", "-q", "--filter", f"label=com.docker.compose.project={DB_PROJECT}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert running.stdout.strip() == ""
    status = stack.status()
    for part in ("databases", "registry"):
        assert f"{part}: stopped" in status, status
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://{REGISTRY_ADDR}/v2/", timeout=5)
    again = stack.make("down")
    assert again.returncode == 0
    assert "stopped airflow" not in again.stderr
    assert "stopped the" not in again.stderr


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None
