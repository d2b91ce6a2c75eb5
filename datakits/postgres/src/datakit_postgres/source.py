"""A PostgreSQL source: its catalog, read in one snapshot, and a bulk reader for the rows.

Reads run in one REPEATABLE READ, READ ONLY transaction per table (`snapshot`), so the cursor
range and the rows copied come from the same state of the source. The catalog (`catalog`) is the
same for every runner that reads PostgreSQL; the bulk reader is the runner's own: `psql`'s binary
COPY here (`stream`), parallel JDBC reads in the Spark runner.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

import psycopg
from psycopg import IsolationLevel, sql

from datakit_contract.tables import TableSpec
from datakit_core.bronze import CopyFormat, Source
from datakit_core.connection import connect
from datakit_core.pgcopy import Block
from datakit_core.schema import Column, RowRange, SourceTable
from datakit_postgres.catalog import PostgresCatalog
from datakit_postgres.cdc import PgCapture, slot_name
from datakit_postgres.config import PostgresRunnerConfig, PostgresSourceSettings
from datakit_postgres.stream import PsqlCopyReader


class BulkReader(Protocol):
    """How a source's rows are read in bulk, as a COPY stream in `copy_format`."""

    copy_format: CopyFormat

    def copy_statement(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> str: ...

    def copy_blocks(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> Iterable[Block]: ...


class PostgresSource(Source):
    """The loader's `Source` for one PostgreSQL database: a catalog and a bulk reader."""

    def __init__(
        self,
        settings: PostgresSourceSettings,
        conn: psycopg.Connection,
        catalog: PostgresCatalog,
        reader: BulkReader,
    ) -> None:
        self.name = settings.name
        self.settings = settings
        self.conn = conn
        self.catalog = catalog
        self.reader = reader
        self.copy_format = reader.copy_format

    @contextmanager
    def snapshot(self, exported: str | None = None) -> Iterator[None]:
        with self.conn.transaction():
            if exported:  # a change stream's start: read exactly what precedes its first change
                self.conn.execute(sql.SQL("set transaction snapshot {}").format(exported))
            yield

    @contextmanager
    def capture(self, tenant: str, spec: TableSpec) -> Iterator[PgCapture]:
        """The table's publication and slot (`cdc`), on a connection of their own: slot functions
        cannot run in the read-only snapshot transactions of `conn`."""
        schema, _, name = spec.name.rpartition(".")
        table = (schema or self.settings.schema_, name)
        slot = slot_name(tenant, self.name, spec.bronze_name)
        app = f"postgres-runner cdc {slot}"
        with connect(self.settings, role="source", application_name=app) as conn:
            yield PgCapture(
                conn,
                lambda: connect(
                    self.settings, role="source", application_name=app, replication=True
                ),
                slot,
                table,
            )

    def check(self) -> dict[str, Any]:
        row = self.conn.execute("select current_setting('server_version'), current_user").fetchone()
        assert row is not None
        return {"address": self.settings.display(), "server_version": row[0], "user": row[1]}

    def list_tables(self) -> list[str]:
        return self.catalog.list_tables()

    def discover(self) -> list[dict[str, Any]]:
        return self.catalog.discover()

    def describe(self, table: str) -> SourceTable:
        return self.catalog.describe(table)

    def lineage_dataset(self, table: SourceTable) -> tuple[str, str]:
        return f"postgres://{self.settings.host}:{self.settings.port}", (
            f"{self.settings.dbname}.{table.qualified}"
        )

    def max_cursor(self, table: SourceTable, rows: RowRange) -> str | None:
        return self.catalog.max_cursor(table, rows)

    def estimate_rows(self, table: SourceTable, rows: RowRange) -> int | None:
        return self.catalog.estimate_rows(table, rows)

    def copy_statement(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> str:
        return self.reader.copy_statement(table, columns, rows)

    def copy_blocks(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> Iterable[Block]:
        return self.reader.copy_blocks(table, columns, rows)


@contextmanager
def source_connection(
    settings: PostgresSourceSettings, application_name: str
) -> Iterator[psycopg.Connection]:
    """The source connection: every `snapshot()` on it is one consistent, read-only transaction."""
    conn = connect(settings, role="source", application_name=application_name)
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def open_source(config: PostgresRunnerConfig) -> Iterator[PostgresSource]:
    with source_connection(config.source, f"postgres-runner {config.source.name}") as conn:
        catalog = PostgresCatalog(conn, config.source, "postgres-runner")
        reader = PsqlCopyReader(catalog, conn, config.source)
        yield PostgresSource(config.source, conn, catalog, reader)
