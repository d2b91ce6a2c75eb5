"""Shared fixtures: two real PostgreSQL servers (source and warehouse) and fresh databases.

By default the servers come from `stack/docker-compose.yml` (image `etl/postgres-server:15`),
started by pytest-docker as project `dk-test` on ports 55431/55432 (a second session running at
the same time sets `DK_TEST_COMPOSE_PROJECT`, `DK_DEMO_SOURCE_PORT` and `DK_DEMO_WAREHOUSE_PORT`
to its own; a session removes its servers when it ends). Set `DK_TEST_SOURCE_PORT`,
`DK_TEST_WAREHOUSE_PORT`, `DK_TEST_PG_USER` and `DK_TEST_PG_PASSWORD` to use servers that are
already running instead (for example a local PostgreSQL while developing).

The fixtures are built from `tests/kit`, which holds everything tests share.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.kit import network
from tests.kit.databases import (
    Database,
    Server,
    compose_servers,
    external_servers,
    fresh_database,
    wait_until_ready,
)
from tests.kit.paths import COMPOSE_FILE
from tests.kit.runners import Runner


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
    external = external_servers()
    if external:
        return external
    servers = compose_servers()  # sets the ports compose reads before it starts
    request.getfixturevalue("docker_services")
    for server in servers:
        wait_until_ready(server)
    return servers


@pytest.fixture
def source_db(pg_servers: tuple[Server, Server]) -> Iterator[Database]:
    yield from fresh_database(pg_servers[0])


@pytest.fixture
def warehouse_db(pg_servers: tuple[Server, Server]) -> Iterator[Database]:
    yield from fresh_database(pg_servers[1])


@pytest.fixture
def runner_env(source_db: Database, warehouse_db: Database) -> dict[str, str]:
    """Environment for a runner pointed at the test databases, source named `erp`."""
    return {
        **source_db.env("SOURCE"),
        **warehouse_db.env("WAREHOUSE"),
        "DK_SOURCE__NAME": "erp",
        "DK_LOG_FORMAT": "json",
    }


@pytest.fixture
def runner(runner_env: dict[str, str]) -> Runner:
    """`postgres-runner` with the test databases' environment."""
    return Runner(runner_env)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never answers: a hung or firewalled server."""
    with network.silent_server() as port:
        yield port
