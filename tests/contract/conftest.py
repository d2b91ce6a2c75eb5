"""Fixtures of the contract modules that freeze or restart servers: such a module names its own
compose project and ports in `OWN_SERVERS = (project, source_port, warehouse_port)` and gets
`servers` (started once for the module, removed after it), and a fresh `source` and `warehouse`
database on them per test (`tests/kit/own_servers.py` says why)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kit.databases import Database, fresh_database
from tests.kit.own_servers import OwnServers


@pytest.fixture(scope="module")
def servers(request: pytest.FixtureRequest) -> Iterator[OwnServers]:
    project, source_port, warehouse_port = request.module.OWN_SERVERS
    with OwnServers.started(project, source_port, warehouse_port) as started:
        yield started


@pytest.fixture
def source(servers: OwnServers) -> Iterator[Database]:
    yield from fresh_database(servers.source)


@pytest.fixture
def warehouse(servers: OwnServers) -> Iterator[Database]:
    yield from fresh_database(servers.warehouse)
