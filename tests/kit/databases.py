"""PostgreSQL for the tests: the two servers (source and warehouse) and throwaway databases.

The servers are the stack's compose services (`stack/docker-compose.yml`, image
`etl/postgres-server:15`), started by pytest-docker (see the fixtures in `tests/conftest.py`),
or servers that already run, named by `DK_TEST_SOURCE_PORT`, `DK_TEST_WAREHOUSE_PORT`,
`DK_TEST_PG_USER` and `DK_TEST_PG_PASSWORD`.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg

SOURCE_PORT = "55431"  # the compose services' ports unless DK_DEMO_*_PORT move them
WAREHOUSE_PORT = "55432"


@dataclass(frozen=True)
class Server:
    port: int
    user: str
    password: str
    admin_db: str

    def connect(self, dbname: str | None = None, **kwargs: Any) -> psycopg.Connection:
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

    def connect(self, **kwargs: Any) -> psycopg.Connection:
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

    def execute(
        self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None
    ) -> list[tuple[Any, ...]]:
        with self.connect(autocommit=True) as conn:
            cur = conn.execute(query, params)
            return cur.fetchall() if cur.description else []


def external_servers() -> tuple[Server, Server] | None:
    """The servers named by `DK_TEST_*`, or None when the compose services are to be used."""
    if "DK_TEST_SOURCE_PORT" not in os.environ:
        return None
    user = os.environ.get("DK_TEST_PG_USER", "postgres")
    password = os.environ.get("DK_TEST_PG_PASSWORD", "")
    admin = os.environ.get("DK_TEST_PG_ADMIN_DB", "postgres")
    return (
        Server(int(os.environ["DK_TEST_SOURCE_PORT"]), user, password, admin),
        Server(int(os.environ["DK_TEST_WAREHOUSE_PORT"]), user, password, admin),
    )


def compose_servers() -> tuple[Server, Server]:
    """The compose services' servers (the demo databases' users and passwords), on the ports
    `DK_DEMO_SOURCE_PORT` and `DK_DEMO_WAREHOUSE_PORT` name; set them before compose starts."""
    os.environ.setdefault("DK_DEMO_SOURCE_PORT", SOURCE_PORT)
    os.environ.setdefault("DK_DEMO_WAREHOUSE_PORT", WAREHOUSE_PORT)
    source = Server(int(os.environ["DK_DEMO_SOURCE_PORT"]), "erp", "erp-demo-password", "erp")
    warehouse = Server(
        int(os.environ["DK_DEMO_WAREHOUSE_PORT"]),
        "warehouse",
        "warehouse-demo-password",
        "warehouse",
    )
    return source, warehouse


def wait_until_ready(server: Server, timeout_s: float = 90) -> None:
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
    """A new, empty database on `server`, dropped (connections and all) afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with server.connect(autocommit=True) as conn:
        conn.execute(f'create database "{name}"')
    try:
        yield Database(server, name)
    finally:
        with server.connect(autocommit=True) as conn:
            # A database with logical replication slots (mode cdc) cannot be dropped.
            conn.execute(
                "select pg_drop_replication_slot(slot_name) from pg_replication_slots "
                "where database = %s",
                (name,),
            )
            conn.execute(f'drop database if exists "{name}" with (force)')
