"""The catalog of a PostgreSQL source: what its tables are and which rows a run reads.

Every query runs on the caller's connection, so inside a `snapshot()` transaction the catalog,
the cursor range and the rows copied all see one state of the source. The Postgres runner reads
rows with `psql` (`stream`), the Spark runner with parallel JDBC reads; both use this catalog.

Built-in types travel in binary untouched. Types that only exist in the source database (enums,
composites, extension types, arrays of them) land in Bronze as text, because their binary form
carries type OIDs that the warehouse does not know; domains land as their base type.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg import sql

from datakit_core.errors import SourceTableNotFound
from datakit_core.schema import Column, RowRange, SourceTable
from datakit_postgres.config import PostgresSourceSettings

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

RELATION_SQL = """
select c.oid, c.relkind, case when c.reltuples >= 0 then c.reltuples::bigint end
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where n.nspname = %s and c.relname = %s
"""

KINDS = {
    "r": "table",
    "p": "partitioned table",
    "v": "view",
    "m": "materialized view",
    "f": "foreign table",
}


class PostgresCatalog:
    """Catalog reads of one source database, on the caller's connection (and snapshot)."""

    def __init__(
        self, conn: psycopg.Connection, settings: PostgresSourceSettings, runner: str
    ) -> None:
        self.conn = conn
        self.settings = settings
        self.runner = runner  # the CLI named in messages: `<runner> discover`
        self._source_types: dict[str, dict[str, str]] = {}
        self._plain_tables: set[str] = set()

    def list_tables(self) -> list[str]:
        """The tables (not views) of the configured schema."""
        rows = self.conn.execute(TABLES_SQL, (self.settings.schema_,)).fetchall()
        return [name for name, kind, _ in rows if kind in ("r", "p")]

    def discover(self) -> list[dict[str, Any]]:
        """Every relation of the configured schema with its columns, Bronze types and key."""
        catalog = []
        schema = self.settings.schema_
        for name, kind, estimate in self.conn.execute(TABLES_SQL, (schema,)).fetchall():
            table = self.describe(f"{schema}.{name}")
            source_types = self.source_types(table)
            catalog.append(
                {
                    "table": table.qualified,
                    "kind": KINDS[kind],
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
        """Columns typed as they land in Bronze, and the primary key."""
        schema, _, name = table.rpartition(".") if "." in table else ("", "", table)
        schema = schema or self.settings.schema_
        row = self.conn.execute(RELATION_SQL, (schema, name)).fetchone()
        if row is None:
            raise SourceTableNotFound(
                f"Source table `{schema}.{name}` does not exist in `{self.settings.display()}`. "
                f"Run `{self.runner} discover --schema {schema}` to list its tables; names are "
                "case-sensitive."
            )
        relid, relkind, estimate = row
        columns, source_types = [], {}
        rows = self.conn.execute(
            COLUMNS_SQL, {"relid": relid, "first_user_oid": FIRST_USER_OID}
        ).fetchall()
        for attname, source_type, *kind in rows:
            columns.append(Column(attname, bronze_type(source_type, *kind)))
            source_types[attname] = source_type
        primary_key = tuple(r[0] for r in self.conn.execute(PRIMARY_KEY_SQL, (relid,)).fetchall())
        qualified = f"{schema}.{name}"
        self._source_types[qualified] = source_types
        if relkind in ("r", "m"):
            self._plain_tables.add(qualified)
        return SourceTable(schema, name, tuple(columns), primary_key, estimate or None)

    def source_types(self, table: SourceTable) -> dict[str, str]:
        """Column name → the column's type in the source (as `format_type` renders it)."""
        if table.qualified not in self._source_types:
            self.describe(table.qualified)
        return self._source_types[table.qualified]

    def is_plain_table(self, table: SourceTable) -> bool:
        """A table or materialized view: `COPY table TO` works on it (not on a view)."""
        self.source_types(table)
        return table.qualified in self._plain_tables

    def max_cursor(self, table: SourceTable, rows: RowRange) -> str | None:
        """The largest cursor value in `rows`, as text."""
        query = sql.SQL("select max({c})::text from {t}{w}").format(
            c=sql.Identifier(rows.cursor or ""), t=identifier(table), w=self.where(table, rows)
        )
        row = self.conn.execute(query).fetchone()
        return row[0] if row else None

    def estimate_rows(self, table: SourceTable, rows: RowRange) -> int | None:
        """The planner's estimate of how many rows `rows` are."""
        query = sql.SQL("explain (format json) select 1 from {t}{w}").format(
            t=identifier(table), w=self.where(table, rows)
        )
        row = self.conn.execute(query).fetchone()
        plan = row[0] if row else None
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return int(plan[0]["Plan"]["Plan Rows"]) if plan else None

    def where(self, table: SourceTable, rows: RowRange) -> sql.Composable:
        """` where cursor > after and cursor <= upto`, compared in the cursor's source type."""
        if not rows.bounded or rows.cursor is None:
            return sql.SQL("")
        cursor = sql.Identifier(rows.cursor)
        cursor_type = sql.SQL(self.source_types(table)[rows.cursor])
        conditions = [
            sql.SQL("{} {} {}::{}").format(cursor, sql.SQL(op), sql.Literal(value), cursor_type)
            for op, value in ((">", rows.after), ("<=", rows.upto))
            if value is not None
        ]
        return sql.SQL(" where ") + sql.SQL(" and ").join(conditions)

    def export_snapshot(self) -> str:
        """The id of the current transaction's snapshot, for other sessions to join."""
        row = self.conn.execute("select pg_export_snapshot()").fetchone()
        assert row is not None
        return str(row[0])


def bronze_type(
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


def identifier(table: SourceTable) -> sql.Identifier:
    return sql.Identifier(table.schema, table.name)
