"""A SQL Server source: catalog reads, cursor ranges, and rows encoded as binary COPY.

Rows come from pymssql in batches (`fetchmany`) and are encoded by `datakit_core.rowcopy` (C, no
Python per row). Reads page by key (see `dialect`), and a table's pages, its row estimate and its
cursor maximum are read in one transaction: with SNAPSHOT isolation they all see the same
committed state. Without it (the database does not allow snapshots) each page sees the data
committed when it runs; the incremental range `cursor > watermark AND cursor <= max` still holds
exactly, but a row whose key changes during the read can be missed or read twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pymssql

from datakit_core.bronze import Source
from datakit_core.errors import (
    ConfigError,
    DatakitError,
    JobFailed,
    SourceTableNotFound,
    TransientError,
)
from datakit_core.pgcopy import Block
from datakit_core.rowcopy import RowEncoder
from datakit_core.schema import Column, RowRange, SourceTable
from datakit_sqlserver import dialect
from datakit_sqlserver.config import SqlServerRunnerConfig, SqlServerSourceSettings
from datakit_sqlserver.errors import error_text, map_error
from datakit_sqlserver.types import (
    SourceColumn,
    bronze_type,
    cursor_literal,
    cursor_text,
    select_expression,
)

log = logging.getLogger(__name__)

KINDS = {"U": "table", "V": "view"}
Fetch = Callable[[str], Iterator[Sequence[tuple[Any, ...]]]]


@dataclass(frozen=True)
class TableInfo:
    """What the catalog says about one table, beyond what the loader's `SourceTable` holds."""

    columns: tuple[SourceColumn, ...]
    page_key: tuple[str, ...]  # unique clustered index, else primary key, else ()

    def column(self, name: str) -> SourceColumn:
        return next(c for c in self.columns if c.name == name)


@dataclass(frozen=True)
class ReadPlan:
    """How one copy reads: the statements follow from it (see `statements`)."""

    table: str
    projection: tuple[str, ...]
    conditions: tuple[str, ...]
    key: tuple[str, ...]  # empty: one streamed SELECT
    key_positions: tuple[int, ...]
    key_columns: tuple[SourceColumn, ...]
    page_rows: int

    def first_statement(self) -> str:
        if not self.key:
            return dialect.stream_select(self.table, self.projection, self.conditions)
        return dialect.page_select(
            self.table, self.projection, self.key, self.conditions, self.page_rows
        )

    def next_statement(self, last_row: Sequence[Any]) -> str:
        """The page after the one whose last row was `last_row` (key values rendered inline)."""
        last = [
            key_literal(last_row[i], c)
            for i, c in zip(self.key_positions, self.key_columns, strict=True)
        ]
        return dialect.page_select(
            self.table, self.projection, self.key, self.conditions, self.page_rows, last
        )


def read_batches(plan: ReadPlan, fetch: Fetch) -> Iterator[Sequence[tuple[Any, ...]]]:
    """Every row of `plan`, in batches: page after page until a page comes back short.

    `fetch(statement)` runs one statement and yields its rows in batches (`fetchmany`).
    """
    statement = plan.first_statement()
    while True:
        count, last = 0, None
        for batch in fetch(statement):
            count += len(batch)
            last = batch[-1]
            yield batch
        if not plan.key or count < plan.page_rows or last is None:
            return
        statement = plan.next_statement(last)


def pages_exactly(column: SourceColumn) -> bool:
    """Whether the driver returns a key column's values exactly, so that the next page can start
    right after the last row read. It keeps time to the microsecond: a 7-digit fraction (100 ns)
    comes back truncated, and `key > <truncated last key>` would read the last row again."""
    return not (column.type_name in ("datetime2", "datetimeoffset", "time") and column.scale > 6)


def key_literal(value: Any, column: SourceColumn) -> str:
    """A key value read from the driver, as a T-SQL literal of the key column's type."""
    if value is None:
        raise JobFailed(
            f"Key column `{column.name}` holds NULL, so rows cannot be paged by it. Give the "
            "table a primary key or a unique clustered index on non-null columns."
        )
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return f"CAST({value} AS {column.declared})"
    if isinstance(value, Decimal):  # positional notation: `1E+2` would be read as a float
        return f"CAST({value:f} AS {column.declared})"
    if isinstance(value, bytes):
        return "0x" + value.hex().upper()
    if isinstance(value, float):
        return f"CAST({value!r} AS {column.declared})"
    if isinstance(value, dt.datetime) and column.type_name in ("datetime", "smalldatetime"):
        # datetime takes at most 3 fractional digits in a literal: go through datetime2.
        text = dialect.string_literal(value.isoformat())
        return f"CAST(CAST({text} AS datetime2(7)) AS {column.declared})"
    if isinstance(value, dt.date | dt.time | uuid.UUID | str):
        text = value.isoformat() if isinstance(value, dt.date | dt.time) else str(value)
        return f"CAST({dialect.string_literal(text)} AS {column.declared})"
    raise JobFailed(
        f"Key column `{column.name}` ({column.declared}) cannot be used to page the table. "
        "Give the table a primary key of numbers, strings, dates or uniqueidentifiers."
    )


class SqlServerSource(Source):
    """The loader's `Source` for one SQL Server database."""

    def __init__(self, settings: SqlServerSourceSettings, conn: Any) -> None:
        self.name = settings.name
        self.settings = settings
        self.conn = conn
        self._tables: dict[str, TableInfo] = {}
        self._isolation: str | None = None

    # -- the Source protocol ---------------------------------------------------------------------

    @contextmanager
    def snapshot(self, exported: str | None = None) -> Iterator[None]:
        assert exported is None  # no change stream here: `capture` refuses mode cdc
        self._run(f"SET TRANSACTION ISOLATION LEVEL {self.isolation_level()}")
        self._run("BEGIN TRANSACTION")
        try:
            yield
        finally:
            self._run("IF @@TRANCOUNT > 0 COMMIT TRANSACTION")

    def check(self) -> dict[str, Any]:
        version, edition, login, database = self._query(dialect.SERVER_SQL)[0]
        return {
            "address": self.settings.display(),
            "server_version": version,
            "edition": edition,
            "user": login,
            "database": database,
            "isolation": self.isolation_level(),
        }

    def list_tables(self) -> list[str]:
        rows = self._query(dialect.TABLES_SQL, (self.settings.schema_,))
        return [name for name, kind, _ in rows if kind.strip() == "U"]

    def discover(self) -> list[dict[str, Any]]:
        catalog = []
        for name, kind, estimate in self._query(dialect.TABLES_SQL, (self.settings.schema_,)):
            table = self.describe(f"{self.settings.schema_}.{name}")
            info = self._tables[table.qualified]
            catalog.append(
                {
                    "table": table.qualified,
                    "kind": KINDS.get(kind.strip(), kind.strip()),
                    "row_estimate": int(estimate) if estimate is not None else None,
                    "primary_key": list(table.primary_key),
                    "page_key": list(info.page_key),
                    "columns": [
                        {"name": c.name, "source_type": c.declared, "bronze_type": bronze_type(c)}
                        for c in info.columns
                    ],
                }
            )
        return catalog

    def lineage_dataset(self, table: SourceTable) -> tuple[str, str]:
        return f"sqlserver://{self.settings.host}:{self.settings.port}", (
            f"{self.settings.database}.{table.qualified}"
        )

    def describe(self, table: str) -> SourceTable:
        schema, _, name = table.rpartition(".") if "." in table else ("", "", table)
        schema = schema or self.settings.schema_
        found = self._query(dialect.OBJECT_SQL, (schema, name))
        if not found:
            raise SourceTableNotFound(
                f"Source table `{schema}.{name}` does not exist in `{self.settings.display()}`. "
                f"Run `sqlserver-runner discover --schema {schema}` to list its tables."
            )
        object_id, _, estimate = found[0]
        columns = tuple(
            SourceColumn(*row) for row in self._query(dialect.COLUMNS_SQL, (object_id,))
        )
        keys = self._query(dialect.KEYS_SQL, (object_id,))
        primary_key = tuple(c for is_pk, _, c in keys if is_pk)
        clustered = tuple(c for is_pk, kind, c in keys if not is_pk and kind == 1)
        primary_clustered = any(is_pk and kind == 1 for is_pk, kind, _ in keys)
        page_key = primary_key if primary_clustered or not clustered else clustered
        self._tables[f"{schema}.{name}"] = TableInfo(columns, page_key)
        return SourceTable(
            schema,
            name,
            tuple(Column(c.name, bronze_type(c)) for c in columns),
            primary_key,
            int(estimate) if estimate else None,
        )

    def max_cursor(self, table: SourceTable, rows: RowRange) -> str | None:
        info = self._info(table)
        column = info.column(rows.cursor or "")
        statement = dialect.max_select(
            _table(table),
            cursor_text(column, f"MAX({dialect.quote(column.name)})"),
            self._conditions(info, rows),
        )
        found = self._query(statement)
        return str(found[0][0]) if found and found[0][0] is not None else None

    def estimate_rows(self, table: SourceTable, rows: RowRange) -> int | None:
        """The table's row count from `sys.partitions`; a bounded range has no cheap estimate."""
        return None if rows.bounded else table.row_estimate

    def copy_statement(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> str:
        plan = self.read_plan(table, columns, rows)
        statement = plan.first_statement()
        if plan.key:
            statement += "\n-- next pages: the same with AND " + dialect.key_after(
                plan.key, [f"<last {k}>" for k in plan.key]
            )
        return statement

    def copy_blocks(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> Iterable[Block]:
        plan = self.read_plan(table, columns, rows)
        encoder = RowEncoder([c.type for c in columns])
        return encoder.blocks(read_batches(plan, self._fetch))

    # -- helpers ---------------------------------------------------------------------------------

    def read_plan(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> ReadPlan:
        info = self._info(table)
        names = [c.name for c in columns]
        by_name = {c.name: c for c in info.columns}
        missing = [n for n in names if n not in by_name]
        if missing:
            raise JobFailed(
                f"Columns {', '.join(f'`{n}`' for n in missing)} are not in source table "
                f"`{table.qualified}`."
            )
        # Pages need the key in every row, read back exactly; otherwise the copy streams.
        key = info.page_key if all(k in names for k in info.page_key) else ()
        inexact = [by_name[k] for k in key if not pages_exactly(by_name[k])]
        if inexact:
            log.info(
                "Table `%s` is read in one streamed SELECT, not in pages: its key column `%s` "
                "(%s) has 100 ns digits the driver does not return, so a page could not start "
                "exactly after the previous one.",
                table.qualified,
                inexact[0].name,
                inexact[0].declared,
            )
            key = ()
        return ReadPlan(
            table=_table(table),
            projection=tuple(select_expression(by_name[n]) for n in names),
            conditions=tuple(self._conditions(info, rows)),
            key=key,
            key_positions=tuple(names.index(k) for k in key),
            key_columns=tuple(by_name[k] for k in key),
            page_rows=self.settings.page_rows,
        )

    def isolation_level(self) -> str:
        """SNAPSHOT when the database allows it; `auto` falls back to READ COMMITTED."""
        if self._isolation is None:
            state = self._query(dialect.SNAPSHOT_ALLOWED_SQL)
            allowed = bool(state) and state[0][0] == 1
            wanted = self.settings.isolation
            if wanted == "snapshot" and not allowed:
                raise ConfigError(
                    f"`isolation: snapshot` is set, but database `{self.settings.database}` does "
                    "not allow SNAPSHOT isolation. Run `ALTER DATABASE … SET "
                    "ALLOW_SNAPSHOT_ISOLATION ON` on the server, or set DK_SOURCE__ISOLATION=auto "
                    "to read with READ COMMITTED (see the README for the trade-off)."
                )
            if wanted == "auto" and not allowed:
                log.warning(
                    "database `%s` does not allow SNAPSHOT isolation: each page reads the data "
                    "committed when it runs (ALTER DATABASE … SET ALLOW_SNAPSHOT_ISOLATION ON "
                    "gives one consistent snapshot per table)",
                    self.settings.database,
                )
            snapshot = allowed and wanted != "read_committed"
            self._isolation = "SNAPSHOT" if snapshot else "READ COMMITTED"
        return self._isolation

    def _conditions(self, info: TableInfo, rows: RowRange) -> list[str]:
        if not rows.bounded or rows.cursor is None:
            return []
        column = info.column(rows.cursor)
        after = cursor_literal(column, rows.after) if rows.after is not None else None
        upto = cursor_literal(column, rows.upto) if rows.upto is not None else None
        return dialect.range_conditions(rows.cursor, after, upto)

    def _info(self, table: SourceTable) -> TableInfo:
        if table.qualified not in self._tables:
            self.describe(table.qualified)
        return self._tables[table.qualified]

    def _fetch(self, statement: str) -> Iterator[Sequence[tuple[Any, ...]]]:
        log.debug("sql server: %s", statement)
        try:
            cursor = self.conn.cursor()
            cursor.execute(statement)
            while batch := cursor.fetchmany(self.settings.fetch_rows):
                yield batch
        except pymssql.Error as exc:
            raise self._error(exc, "Reading the source") from None

    def _query(self, statement: str, params: tuple[Any, ...] | None = None) -> list[Any]:
        try:
            cursor = self.conn.cursor()
            cursor.execute(statement, params)
            return list(cursor.fetchall())
        except pymssql.Error as exc:
            raise self._error(exc, "A catalog query on the source") from None

    def _run(self, statement: str) -> None:
        try:
            self.conn.cursor().execute(statement)
        except pymssql.Error as exc:
            raise self._error(exc, f"`{statement}` on the source") from None

    def _error(self, exc: pymssql.Error, doing: str) -> DatakitError:
        return map_error(exc, f"{doing} `{self.settings.display()}`")


def _table(table: SourceTable) -> str:
    return dialect.qualified(table.schema, table.name)


def connect(
    settings: SqlServerSourceSettings, application_name: str, stall_timeout_s: float = 0
) -> Any:
    """Open the connection; failures become `TransientError` (exit 3) naming the address.

    A server that sends nothing for `query_timeout` (else the stall timeout) fails the read, so
    a frozen server ends the run (the watchdog probes PostgreSQL servers only)."""
    if settings.auth == "kerberos":
        # MIT Kerberos (inside the driver's FreeTDS) gets its initial ticket from this keytab.
        if settings.keytab is not None:
            os.environ["KRB5_CLIENT_KTNAME"] = str(settings.keytab)
        if settings.krb5_config is not None:
            os.environ["KRB5_CONFIG"] = str(settings.krb5_config)
    password = settings.password.get_secret_value() if settings.password else None
    try:
        return pymssql.connect(
            server=settings.host,
            port=str(settings.port),
            # With Kerberos, FreeTDS uses GSSAPI only when no login name is sent.
            user=settings.user if settings.auth == "sql" else None,
            password=password,
            database=settings.database,
            login_timeout=settings.connect_timeout,
            timeout=settings.query_timeout or int(stall_timeout_s),
            appname=application_name[:128],
            autocommit=True,  # transactions are explicit: see `SqlServerSource.snapshot`
            tds_version=settings.tds_version,  # one version: no slow fallback retries
            encryption=settings.encryption,
            read_only=True,
            charset="UTF-8",
            arraysize=settings.fetch_rows,
        )
    except pymssql.Error as exc:
        reason = error_text(exc)
        raise TransientError(
            f"Cannot connect to the source `{settings.display()}` "
            f"(timeout {settings.connect_timeout} s): {reason}. Check `DK_SOURCE__HOST`, "
            "`DK_SOURCE__PORT`, `DK_SOURCE__USER` and `DK_SOURCE__PASSWORD` (or the Kerberos "
            "keytab), or run `sqlserver-runner check`."
        ) from None


@contextmanager
def open_source(config: SqlServerRunnerConfig) -> Iterator[SqlServerSource]:
    conn = connect(config.source, f"sqlserver-runner {config.source.name}", config.stall_timeout_s)
    try:
        yield SqlServerSource(config.source, conn)
    finally:
        conn.close()
