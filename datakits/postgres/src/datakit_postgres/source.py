"""A PostgreSQL source: catalog reads, cursor ranges, and the binary COPY stream.

Reads run in one REPEATABLE READ, READ ONLY transaction per table, so the cursor range and the
rows copied come from the same snapshot. Built-in types travel in binary untouched. Types that only
exist in the source database (enums, composites, extension types, arrays of them) land in Bronze as
text, because their binary form carries type OIDs that the warehouse does not know.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import IsolationLevel, sql

from datakit_core.bronze import Source
from datakit_core.connection import connect
from datakit_core.errors import SourceTableNotFound
from datakit_core.pgcopy import Block
from datakit_core.schema import Column, RowRange, SourceTable
from datakit_postgres.config import PostgresRunnerConfig, PostgresSourceSettings
from datakit_postgres.stream import psql_copy_out

FIRST_USER_OID = 16384  # FirstNormalObjectId: OIDs below it are built into every server

COLUMNS_SQL = """
select a.attname,
       format_type(a.atttypid, a.atttypmod),
       t.oid >= %(first_user_oid)s and t.typtype <> 'd',
       case when t.typtype = 'd' then format_type(t.typbasetype, t.typtypmod) end,
       case when t.typtype = 'd' then t.typbasetype >= %(first_user_oid)s end,
       et.oid is not null and et.oid >= %(first_user_oid)s,
       et.oid is not null
from pg_attribute a
join pg_type t on t.oid = a.atttypid
left join pg_type et on et.oid = t.typelem and t.typlen = -1 and t.typcategory = 'A'
where a.attrelid = %(relid)s and a.attnum > 0 and not a.attisdropped
order by a.attnum
"""

PRIMARY_KEY_SQL = """
select a.attname
from pg_index i
join lateral unnest(i.indkey) with ordinality as k(attnum, ord) on true
join pg_attribute a on a.attrelid = i.indrelid and a.attnum = k.attnum
where i.indrelid = %s and i.indisprimary
order by k.ord
"""

TABLES_SQL = """
select c.relname, c.relkind, case when c.reltuples >= 0 then c.reltuples::bigint end
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f') and not c.relispartition
order by c.relname
"""


class PostgresSource(Source):
    def __init__(self, settings: PostgresSourceSettings, conn: psycopg.Connection) -> None:
        self.name = settings.name
        self.settings = settings
        self.conn = conn
        self._source_types: dict[str, dict[str, str]] = {}
        self._copy_whole_table: dict[str, bool] = {}

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def check(self) -> dict[str, Any]:
        row = self.conn.execute("select current_setting('server_version'), current_user").fetchone()
        assert row is not None
        return {"address": self.settings.display(), "server_version": row[0], "user": row[1]}

    def list_tables(self) -> list[str]:
        rows = self.conn.execute(TABLES_SQL, (self.settings.schema_,)).fetchall()
        return [name for name, kind, _ in rows if kind in ("r", "p")]

    def discover(self) -> list[dict[str, Any]]:
        catalog = []
        for name, kind, estimate in self.conn.execute(
            TABLES_SQL, (self.settings.schema_,)
        ).fetchall():
            table = self.describe(f"{self.settings.schema_}.{name}")
            source_types = self._source_types[table.qualified]
            catalog.append(
                {
                    "table": table.qualified,
                    "kind": {
                        "r": "table",
                        "p": "partitioned table",
                        "v": "view",
                        "m": "materialized view",
                        "f": "foreign table",
                    }[kind],
                    "row_estimate": estimate,
                    "primary_key": list(table.primary_key),
                    "columns": [
                        {"name": c.name, "source_type": source_types[c.name], "bronze_type": c.type}
                        for c in table.columns
                    ],
                }
            )
        return catalog

    def describe(self, table: str) -> SourceTable:
        schema, _, name = table.rpartition(".") if "." in table else ("", "", table)
        schema = schema or self.settings.schema_
        row = self.conn.execute(
            "select c.oid, c.relkind, case when c.reltuples >= 0 then c.reltuples::bigint end "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relname = %s",
            (schema, name),
        ).fetchone()
        if row is None:
            raise SourceTableNotFound(
                f"Source table `{schema}.{name}` does not exist in `{self.settings.display()}`. "
                f"Run `postgres-runner discover --schema {schema}` to list its tables; names are "
                "case-sensitive."
            )
        relid, relkind, estimate = row
        columns, source_types = [], {}
        rows = self.conn.execute(
            COLUMNS_SQL, {"relid": relid, "first_user_oid": FIRST_USER_OID}
        ).fetchall()
        for attname, source_type, user_type, base_type, user_base, user_element, is_array in rows:
            columns.append(
                Column(
                    attname,
                    _bronze_type(
                        source_type, user_type, base_type, user_base, user_element, is_array
                    ),
                )
            )
            source_types[attname] = source_type
        primary_key = tuple(r[0] for r in self.conn.execute(PRIMARY_KEY_SQL, (relid,)).fetchall())
        qualified = f"{schema}.{name}"
        self._source_types[qualified] = source_types
        self._copy_whole_table[qualified] = relkind in ("r", "m")
        return SourceTable(schema, name, tuple(columns), primary_key, estimate or None)

    def max_cursor(self, table: SourceTable, rows: RowRange) -> str | None:
        query = sql.SQL("select max({c})::text from {t}{w}").format(
            c=sql.Identifier(rows.cursor or ""), t=_table(table), w=self._where(table, rows)
        )
        row = self.conn.execute(query).fetchone()
        return row[0] if row else None

    def estimate_rows(self, table: SourceTable, rows: RowRange) -> int | None:
        query = sql.SQL("explain (format json) select 1 from {t}{w}").format(
            t=_table(table), w=self._where(table, rows)
        )
        row = self.conn.execute(query).fetchone()
        plan = row[0] if row else None
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return int(plan[0]["Plan"]["Plan Rows"]) if plan else None

    def copy_statement(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> str:
        return self._copy(table, columns, rows).as_string(self.conn)

    def copy_blocks(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> Iterator[Block]:
        statement = self._copy(table, columns, rows).as_string(self.conn)
        return psql_copy_out(self.conn, self.settings, statement)

    def _copy(
        self, table: SourceTable, columns: tuple[Column, ...], rows: RowRange
    ) -> sql.Composed:
        source_types = self._source_types[table.qualified]
        casts = [c for c in columns if source_types.get(c.name) != c.type]
        names = sql.SQL(", ").join(sql.Identifier(c.name) for c in columns)
        if not casts and not rows.bounded and self._copy_whole_table[table.qualified]:
            # COPY of a table skips the executor's projection: the fastest path of all.
            return sql.SQL("copy {} ({}) to stdout (format binary)").format(_table(table), names)
        projection = sql.SQL(", ").join(
            sql.SQL("{}::{}").format(sql.Identifier(c.name), sql.SQL(c.type))
            if c in casts
            else sql.Identifier(c.name)
            for c in columns
        )
        return sql.SQL("copy (select {} from {}{}) to stdout (format binary)").format(
            projection, _table(table), self._where(table, rows)
        )

    def _where(self, table: SourceTable, rows: RowRange) -> sql.Composable:
        if not rows.bounded or rows.cursor is None:
            return sql.SQL("")
        cursor = sql.Identifier(rows.cursor)
        cursor_type = sql.SQL(self._source_types[table.qualified][rows.cursor])
        conditions = [
            sql.SQL("{} {} {}::{}").format(cursor, sql.SQL(op), sql.Literal(value), cursor_type)
            for op, value in ((">", rows.after), ("<=", rows.upto))
            if value is not None
        ]
        return sql.SQL(" where ") + sql.SQL(" and ").join(conditions)


def _bronze_type(
    source_type: str,
    user_type: bool,
    base_type: str | None,
    user_base: bool | None,
    user_element: bool,
    is_array: bool,
) -> str:
    """The warehouse type a source column lands in (see the module docstring)."""
    if base_type is not None:  # a domain: its base type, which every server knows if built in
        return "text" if user_base else base_type
    if is_array and user_element:
        return "text[]"
    return "text" if user_type else source_type


def _table(table: SourceTable) -> sql.Identifier:
    return sql.Identifier(table.schema, table.name)


@contextmanager
def open_source(config: PostgresRunnerConfig) -> Iterator[PostgresSource]:
    conn = connect(
        config.source, role="source", application_name=f"postgres-runner {config.source.name}"
    )
    # Every `snapshot()` block on the source is one consistent, read-only transaction.
    conn.isolation_level = IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    try:
        yield PostgresSource(config.source, conn)
    finally:
        conn.close()
