"""T-SQL text: identifiers, catalog queries, keyset pages and watermark ranges.

Every statement the runner sends is built here, as plain text, so it can be read (`plan`) and
unit-tested without a server.

Reads page by key: `SELECT TOP (n) … WHERE <range> AND <key after last> ORDER BY <key>` over the
unique clustered index (or the primary key), so each page is an index seek and SQL Server never
sorts the table. A key of several columns is compared column by column (T-SQL has no row-value
comparison): `(a > @a) OR (a = @a AND b > @b)`. A table with neither is read in one streamed
SELECT without ORDER BY.
"""

from __future__ import annotations

from collections.abc import Sequence


def quote(identifier: str) -> str:
    """`[name]`, with `]` doubled: any name, capitals, spaces or reserved words, is safe."""
    return "[" + identifier.replace("]", "]]") + "]"


def qualified(schema: str, name: str) -> str:
    return f"{quote(schema)}.{quote(name)}"


def string_literal(value: str) -> str:
    return "N'" + value.replace("'", "''") + "'"


TABLES_SQL = """\
SELECT o.name, o.type,
       (SELECT SUM(p.rows) FROM sys.partitions p
        WHERE p.object_id = o.object_id AND p.index_id IN (0, 1))
FROM sys.objects o JOIN sys.schemas s ON s.schema_id = o.schema_id
WHERE s.name = %s AND o.type IN ('U', 'V') AND o.is_ms_shipped = 0
ORDER BY o.name"""

OBJECT_SQL = """\
SELECT o.object_id, o.type,
       (SELECT SUM(p.rows) FROM sys.partitions p
        WHERE p.object_id = o.object_id AND p.index_id IN (0, 1))
FROM sys.objects o JOIN sys.schemas s ON s.schema_id = o.schema_id
WHERE s.name = %s AND o.name = %s AND o.type IN ('U', 'V')"""

# Alias types resolve to their base type; CLR types (hierarchyid, geometry) keep their own name.
COLUMNS_SQL = """\
SELECT c.name,
       LOWER(CASE WHEN t.is_assembly_type = 1 THEN t.name ELSE TYPE_NAME(c.system_type_id) END),
       c.max_length, c.precision, c.scale
FROM sys.columns c JOIN sys.types t ON t.user_type_id = c.user_type_id
WHERE c.object_id = %s
ORDER BY c.column_id"""

# Key columns of the primary key and of a unique clustered index, in key order.
KEYS_SQL = """\
SELECT i.is_primary_key, i.type, c.name
FROM sys.indexes i
JOIN sys.index_columns ic ON ic.object_id = i.object_id AND ic.index_id = i.index_id
JOIN sys.columns c ON c.object_id = ic.object_id AND c.column_id = ic.column_id
WHERE i.object_id = %s AND i.is_disabled = 0 AND ic.key_ordinal > 0
  AND (i.is_primary_key = 1 OR (i.is_unique = 1 AND i.type = 1))
ORDER BY i.is_primary_key DESC, ic.key_ordinal"""

SNAPSHOT_ALLOWED_SQL = "SELECT snapshot_isolation_state FROM sys.databases WHERE name = DB_NAME()"

SERVER_SQL = (
    "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(128)), "
    "CAST(SERVERPROPERTY('Edition') AS nvarchar(128)), SUSER_SNAME(), DB_NAME()"
)


def range_conditions(cursor: str | None, after: str | None, upto: str | None) -> list[str]:
    """`cursor > after` and `cursor <= upto`; `after`/`upto` are already typed T-SQL literals."""
    if cursor is None:
        return []
    column = quote(cursor)
    conditions = []
    if after is not None:
        conditions.append(f"{column} > {after}")
    if upto is not None:
        conditions.append(f"{column} <= {upto}")
    return conditions


def where(conditions: Sequence[str]) -> str:
    return f" WHERE {' AND '.join(conditions)}" if conditions else ""


def key_after(key: Sequence[str], last: Sequence[str]) -> str:
    """Rows whose key sorts after the last row read; `last` holds its key values as literals.

    `(a > @a) OR (a = @a AND b > @b)`: the disjunction SQL Server turns into one index seek.
    """
    terms = []
    for i, name in enumerate(key):
        equal = [f"{quote(k)} = {v}" for k, v in zip(key[:i], last[:i], strict=True)]
        terms.append("(" + " AND ".join([*equal, f"{quote(name)} > {last[i]}"]) + ")")
    return "(" + " OR ".join(terms) + ")"


def page_select(
    table: str,
    projection: Sequence[str],
    key: Sequence[str],
    conditions: Sequence[str],
    page_rows: int,
    last: Sequence[str] | None = None,
) -> str:
    """One keyset page: the first (`last` is None), or the one after the key values `last`."""
    parts = list(conditions) if last is None else [*conditions, key_after(key, last)]
    order = ", ".join(quote(k) for k in key)
    return (
        f"SELECT TOP ({page_rows}) {', '.join(projection)} FROM {table}{where(parts)} "
        f"ORDER BY {order}"
    )


def stream_select(table: str, projection: Sequence[str], conditions: Sequence[str]) -> str:
    """The whole read in one statement, for a table with no key to page on."""
    return f"SELECT {', '.join(projection)} FROM {table}{where(conditions)}"


def max_select(table: str, cursor_text: str, conditions: Sequence[str]) -> str:
    return f"SELECT {cursor_text} FROM {table}{where(conditions)}"


def count_select(table: str, conditions: Sequence[str]) -> str:
    return f"SELECT COUNT_BIG(*) FROM {table}{where(conditions)}"
