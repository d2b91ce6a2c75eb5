"""Shared fixtures: two real PostgreSQL servers (source and warehouse) and fresh databases.

By default the servers come from `stack/docker-compose.yml` (image `etl/postgres-server:15`),
started by pytest-docker as project `dk-test` on ports 55431/55432 (a second session running at
the same time sets `DK_TEST_COMPOSE_PROJECT`, `DK_DEMO_SOURCE_PORT` and `DK_DEMO_WAREHOUSE_PORT`
to its own; a session removes its servers when it ends). Set `DK_TEST_SOURCE_PORT`,
`DK_TEST_WAREHOUSE_PORT`, `DK_TEST_PG_USER` and `DK_TEST_PG_PASSWORD` to use servers that are
already running instead (for example a local PostgreSQL while developing).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from datakit_contract.result import RunResult

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "stack" / "docker-compose.yml"
RUNNER = Path(sys.executable).parent / "postgres-runner"


@dataclass(frozen=True)
class Server:
    port: int
    user: str
    password: str
    admin_db: str

    def connect(self, dbname: str | None = None, **kwargs: object) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=self.user,
            password=self.password,
            dbname=dbname or self.admin_db,
            **kwargs,
        )


@dataclass(frozen=True)
class Database:
    server: Server
    name: str

    def connect(self, **kwargs: object) -> psycopg.Connection:
        return self.server.connect(self.name, **kwargs)

    def env(self, prefix: str) -> dict[str, str]:
        """The `DK_<PREFIX>__…` variables a runner needs to reach this database."""
        return {
            f"DK_{prefix}__HOST": "127.0.0.1",
            f"DK_{prefix}__PORT": str(self.server.port),
            f"DK_{prefix}__DBNAME": self.name,
            f"DK_{prefix}__USER": self.server.user,
            f"DK_{prefix}__PASSWORD": self.server.password,
        }

    def execute(self, query: str, params: object = None) -> list[tuple]:
        with self.connect(autocommit=True) as conn:
            cur = conn.execute(query, params)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []


def _external_servers() -> tuple[Server, Server] | None:
    if "DK_TEST_SOURCE_PORT" not in os.environ:
        return None
    user = os.environ.get("DK_TEST_PG_USER", "postgres")
    password = os.environ.get("DK_TEST_PG_PASSWORD", "")
    admin = os.environ.get("DK_TEST_PG_ADMIN_DB", "postgres")
    return (
        Server(int(os.environ["DK_TEST_SOURCE_PORT"]), user, password, admin),
        Server(int(os.environ["DK_TEST_WAREHOUSE_PORT"]), user, password, admin),
    )


@pytest.fixture(scope="session")
def docker_compose_command() -> str:
    return "docker-compose"  # Debian ships compose v1


@pytest.fixture(scope="session")
def docker_compose_file() -> str:
    return str(COMPOSE_FILE)


@pytest.fixture(scope="session")
def docker_compose_project_name() -> str:
    # Two test sessions at once need their own project (and ports, `DK_DEMO_*_PORT`): a session
    # removes its project's servers when it ends.
    return os.environ.get("DK_TEST_COMPOSE_PROJECT", "dk-test")


@pytest.fixture(scope="session")
def docker_setup() -> list[str]:
    return ["up --build -d"]  # compose v1 has no --wait: readiness is polled below


@pytest.fixture(scope="session")
def pg_servers(request: pytest.FixtureRequest) -> tuple[Server, Server]:
    external = _external_servers()
    if external:
        return external
    os.environ.setdefault("DK_DEMO_SOURCE_PORT", "55431")
    os.environ.setdefault("DK_DEMO_WAREHOUSE_PORT", "55432")
    request.getfixturevalue("docker_services")
    source = Server(int(os.environ["DK_DEMO_SOURCE_PORT"]), "erp", "erp-demo-password", "erp")
    warehouse = Server(
        int(os.environ["DK_DEMO_WAREHOUSE_PORT"]),
        "warehouse",
        "warehouse-demo-password",
        "warehouse",
    )
    for server in (source, warehouse):
        _wait_until_ready(server)
    return source, warehouse


def _wait_until_ready(server: Server, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with server.connect(connect_timeout=2):
                return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def fresh_database(server: Server) -> Iterator[Database]:
    name = f"t_{uuid.uuid4().hex[:12]}"
    with server.connect(autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    yield Database(server, name)
    with server.connect(autocommit=True) as conn:
        conn.execute(f'drop database if exists "{name}" with (force)')


@pytest.fixture
def source_db(pg_servers: tuple[Server, Server]) -> Iterator[Database]:
    yield from fresh_database(pg_servers[0])


@pytest.fixture
def warehouse_db(pg_servers: tuple[Server, Server]) -> Iterator[Database]:
    yield from fresh_database(pg_servers[1])


@dataclass(frozen=True)
class Outcome:
    code: int
    stdout: str
    stderr: str

    @property
    def result(self) -> RunResult:
        """The RunResult the runner printed last on stdout."""
        assert self.stdout.strip(), f"no stdout; stderr was:\n{self.stderr}"
        return RunResult.from_stdout(self.stdout)


@pytest.fixture
def runner_env(source_db: Database, warehouse_db: Database) -> dict[str, str]:
    """Environment for a runner pointed at the test databases, source named `erp`."""
    return {
        **source_db.env("SOURCE"),
        **warehouse_db.env("WAREHOUSE"),
        "DK_SOURCE__NAME": "erp",
        "DK_LOG_FORMAT": "json",
    }


def run_runner(args: list[str], env: dict[str, str], timeout: float = 300) -> Outcome:
    """Run the installed `postgres-runner` exactly as a shell would, with only `env` set."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("DK_")}
    proc = subprocess.run(
        [str(RUNNER), *args], env={**base, **env}, capture_output=True, text=True, timeout=timeout
    )
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


class Runner:
    """Calls `postgres-runner` with the test databases' environment plus any overrides."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env

    def __call__(self, *args: str, env: dict[str, str] | None = None) -> Outcome:
        return run_runner(list(args), {**self.env, **(env or {})})


@pytest.fixture
def runner(runner_env: dict[str, str]) -> Runner:
    return Runner(runner_env)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a hung or firewalled server."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()
