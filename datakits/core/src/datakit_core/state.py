"""Platform state in the warehouse: watermarks, the run ledger, table locks, per tenant.

Each tenant's state lives in its own schema, `<prefix>datakit` (`datakit` for a tenant with an
empty prefix), so a tenant's loader role is granted its own watermarks and runs and no one
else's. Watermarks live in `<prefix>datakit.state`, one small row per (tenant, source, table), and
are written in the same transaction as the data they describe; `<prefix>datakit.runs` keeps one
row per run and table. A transaction-scoped advisory lock per (tenant, source, table) keeps two
runs from loading the same table at once; the second waits, then sees the first one's watermark.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from datakit_contract.names import state_schema
from datakit_core.errors import TransientError

log = logging.getLogger(__name__)

TABLES_DDL = """
create table if not exists {schema}.state (
    tenant text not null,
    source text not null,
    table_name text not null,
    cursor_column text,
    watermark text,
    run_id uuid,
    updated_at timestamptz not null default now(),
    primary key (tenant, source, table_name)
);
create table if not exists {schema}.runs (
    run_id uuid not null,
    tenant text not null,
    source text not null,
    table_name text not null,
    target text not null,
    mode text not null,
    status text not null,
    rows_read bigint not null default 0,
    rows_written bigint not null default 0,
    rows_deleted bigint not null default 0,
    watermark_before text,
    watermark_after text,
    runner text not null,
    image_version text not null,
    started_at timestamptz not null,
    finished_at timestamptz not null,
    error text,
    primary key (run_id, table_name)
);
create index if not exists runs_by_table on {schema}.runs (tenant, source, table_name, started_at);
-- added after 0.1.0: ledgers created before it gain the column
alter table {schema}.runs add column if not exists rows_deleted bigint not null default 0;
"""


@dataclass(frozen=True)
class TableKey:
    tenant: str
    source: str
    table: str
    prefix: str = ""  # the tenant's schema prefix: its state is in `<prefix>datakit`

    def __str__(self) -> str:
        return f"{self.tenant}/{self.source}/{self.table}"

    @property
    def state(self) -> sql.Identifier:
        return sql.Identifier(state_schema(self.prefix), "state")

    @property
    def runs(self) -> sql.Identifier:
        return sql.Identifier(state_schema(self.prefix), "runs")


@dataclass(frozen=True)
class Watermark:
    cursor_column: str | None
    value: str | None
    run_id: str | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class LedgerEntry:
    run_id: str
    key: TableKey
    target: str
    mode: str
    status: str
    rows_read: int
    rows_written: int
    rows_deleted: int
    watermark_before: str | None
    watermark_after: str | None
    runner: str
    image_version: str
    started_at: datetime
    finished_at: datetime
    error: str | None = None


def ensure_state_schema(conn: psycopg.Connection, prefix: str = "") -> None:
    """Create the tenant's state schema and tables on first use. Where `warehouse-init` created
    the schema for the tenant's loader role, the loader creates only the tables in it."""
    schema = state_schema(prefix)
    row = conn.execute(
        "select to_regclass(%s) is not null and exists (select from pg_attribute"
        " where attrelid = to_regclass(%s) and attname = 'rows_deleted')",
        (_qualified(schema, "state"), _qualified(schema, "runs")),
    ).fetchone()
    if not (row and row[0]):
        ensure_schema(conn, schema)
        _create_if_missing(conn, sql.SQL(TABLES_DDL).format(schema=sql.Identifier(schema)))
        log.info("created the platform state tables in `%s`", schema)


def ensure_schema(conn: psycopg.Connection, schema: str) -> None:
    """Create a schema (a source's Bronze schema) unless it exists, in a short transaction of its
    own before a table's load, so the table's transaction never fails on it. Checking first
    matters: `create schema if not exists` needs the database's CREATE privilege even when the
    schema exists, and a tenant's loader role has it only on its own schemas."""
    row = conn.execute("select to_regnamespace(%s) is not null", (schema,)).fetchone()
    if not (row and row[0]):
        _create_if_missing(
            conn, sql.SQL("create schema if not exists {}").format(sql.Identifier(schema))
        )


# Any constant distinct from the table-lock keys: first-run DDL takes turns on it.
_BOOTSTRAP_LOCK = 0x6461_7461_6B69_74
_ALREADY_CREATED = (
    pg_errors.UniqueViolation,  # a catalog row inserted by a concurrent `create … if not exists`
    pg_errors.DuplicateSchema,
    pg_errors.DuplicateTable,
    pg_errors.DuplicateObject,
)


def _create_if_missing(conn: psycopg.Connection, ddl: str | sql.Composed) -> None:
    """Run `create … if not exists` DDL in a transaction of its own. Two first runs of a tenant
    start at once when its pool has several slots. They take turns on an advisory lock (their
    DDL on the same tables would deadlock), and still `if not exists` may look at the catalog as
    it was before the other committed, and fail on the row the other inserted: the next attempt
    sees that row and skips it."""
    for attempt in range(3):
        try:
            with conn.transaction():
                conn.execute("select pg_advisory_xact_lock(%s)", (_BOOTSTRAP_LOCK,))
                conn.execute(ddl)
            return
        except _ALREADY_CREATED:
            if attempt == 2:
                raise
            time.sleep(0.2)


def state_schema_exists(conn: psycopg.Connection, prefix: str = "") -> bool:
    row = conn.execute(
        "select to_regclass(%s) is not null", (_qualified(state_schema(prefix), "state"),)
    ).fetchone()
    return bool(row and row[0])


def _qualified(schema: str, table: str) -> str:
    """`schema.table` quoted as `to_regclass` reads it."""
    return sql.Identifier(schema, table).as_string(None)


def lock_table(conn: psycopg.Connection, key: TableKey, timeout_s: float) -> None:
    """Take the table's lock for the current transaction, waiting at most `timeout_s`."""
    conn.execute(f"set local lock_timeout = '{int(timeout_s * 1000)}ms'")
    try:
        conn.execute("select pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"datakit:{key}",))
    except pg_errors.LockNotAvailable:
        raise TransientError(
            f"Another run is still loading `{key}` after waiting {timeout_s:g} s. "
            f"Let it finish (see `{state_schema(key.prefix)}.runs` and pg_stat_activity), or raise "
            "`DK_LOCK_TIMEOUT_S`."
        ) from None
    conn.execute("set local lock_timeout = 0")


def read_watermark(conn: psycopg.Connection, key: TableKey) -> Watermark:
    row = conn.execute(
        sql.SQL(
            "select cursor_column, watermark, run_id::text, updated_at from {} "
            "where tenant = %s and source = %s and table_name = %s"
        ).format(key.state),
        (key.tenant, key.source, key.table),
    ).fetchone()
    return Watermark(*row) if row else Watermark(None, None)


def write_watermark(
    conn: psycopg.Connection,
    key: TableKey,
    cursor_column: str | None,
    value: str | None,
    run_id: str,
) -> None:
    conn.execute(
        sql.SQL(
            """
            insert into {} (tenant, source, table_name, cursor_column, watermark, run_id)
            values (%s, %s, %s, %s, %s, %s)
            on conflict (tenant, source, table_name) do update
            set cursor_column = excluded.cursor_column, watermark = excluded.watermark,
                run_id = excluded.run_id, updated_at = now()
            """
        ).format(key.state),
        (key.tenant, key.source, key.table, cursor_column, value, run_id),
    )


def delete_watermark(conn: psycopg.Connection, key: TableKey) -> bool:
    cur = conn.execute(
        sql.SQL("delete from {} where tenant = %s and source = %s and table_name = %s").format(
            key.state
        ),
        (key.tenant, key.source, key.table),
    )
    return cur.rowcount > 0


def list_watermarks(conn: psycopg.Connection, key: TableKey) -> list[dict[str, object]]:
    """The watermarks of every table of `key`'s tenant and source (`key.table` is ignored)."""
    cur = conn.execute(
        sql.SQL(
            "select table_name, cursor_column, watermark, run_id::text, updated_at from {} "
            "where tenant = %s and source = %s order by table_name"
        ).format(key.state),
        (key.tenant, key.source),
    )
    names = [column.name for column in cur.description or []]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def record_run(conn: psycopg.Connection, entry: LedgerEntry) -> None:
    conn.execute(
        sql.SQL(
            """
            insert into {} (run_id, tenant, source, table_name, target, mode, status,
                rows_read, rows_written, rows_deleted, watermark_before, watermark_after, runner,
                image_version, started_at, finished_at, error)
            values (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
            on conflict (run_id, table_name) do nothing
            """
        ).format(entry.key.runs),
        (
            entry.run_id,
            entry.key.tenant,
            entry.key.source,
            entry.key.table,
            entry.target,
            entry.mode,
            entry.status,
            entry.rows_read,
            entry.rows_written,
            entry.rows_deleted,
            entry.watermark_before,
            entry.watermark_after,
            entry.runner,
            entry.image_version,
            entry.started_at,
            entry.finished_at,
            entry.error,
        ),
    )
