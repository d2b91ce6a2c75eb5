"""SQL Server column types → the PostgreSQL type each lands in, and how it is read.

A column is read as itself when the driver returns a Python value that psycopg dumps exactly
into the Bronze type (ints, `Decimal`, `datetime` with or without zone, `date`, `time`, `bytes`,
`uuid.UUID`, `bool`, `str`, `float`). Types the driver cannot return as such a value are
converted in the SELECT (`CONVERT(nvarchar(max), …)`, `.ToString()`) and land as text.

PostgreSQL keeps time to the microsecond: `datetime2(7)`, `time(7)` and `datetimeoffset(7)` land
as precision 6 and lose their 100-nanosecond digit. Watermarks do not: the cursor's maximum is
read as SQL Server's own text (`CONVERT(…, 126)`) and compared in SQL Server, so `>` is exact.
"""

from __future__ import annotations

from dataclasses import dataclass

from datakit_sqlserver.dialect import quote


@dataclass(frozen=True)
class SourceColumn:
    """A column as `sys.columns` describes it."""

    name: str
    type_name: str  # base system type (alias types resolved), lower case
    max_length: int  # bytes; -1 for (max)
    precision: int
    scale: int

    @property
    def declared(self) -> str:
        """The type as SQL Server's DDL would spell it (`nvarchar(50)`, `decimal(18,2)`)."""
        t = self.type_name
        if t in ("varchar", "char", "varbinary", "binary"):
            return f"{t}({'max' if self.max_length == -1 else self.max_length})"
        if t in ("nvarchar", "nchar"):
            return f"{t}({'max' if self.max_length == -1 else self.max_length // 2})"
        if t in ("decimal", "numeric"):
            return f"{t}({self.precision},{self.scale})"
        if t in ("datetime2", "datetimeoffset", "time"):
            return f"{t}({self.scale})"
        return t


_FIXED = {
    "bit": "boolean",
    "tinyint": "smallint",  # 0..255 does not fit PostgreSQL's (absent) one-byte integer
    "smallint": "smallint",
    "int": "integer",
    "bigint": "bigint",
    "real": "real",
    "money": "numeric(19,4)",
    "smallmoney": "numeric(10,4)",
    "date": "date",
    "datetime": "timestamp(3) without time zone",
    "smalldatetime": "timestamp(0) without time zone",
    "uniqueidentifier": "uuid",
    "text": "text",
    "ntext": "text",
    "image": "bytea",
    "timestamp": "bytea",  # rowversion: binary(8)
    "rowversion": "bytea",
    "sysname": "character varying(128)",
}

# Read through a conversion in the SELECT, landing as text.
_AS_TEXT = {
    "xml": "CONVERT(nvarchar(max), {c})",
    "sql_variant": "CONVERT(nvarchar(max), {c})",
    "hierarchyid": "{c}.ToString()",
    "geometry": "{c}.STAsText()",
    "geography": "{c}.STAsText()",
}


def bronze_type(column: SourceColumn) -> str:
    """The PostgreSQL type (as `format_type()` renders it) a SQL Server column lands in."""
    t = column.type_name
    if t in _FIXED:
        return _FIXED[t]
    if t in ("decimal", "numeric"):
        return f"numeric({column.precision},{column.scale})"
    if t == "float":
        return "real" if column.precision <= 24 else "double precision"
    if t in ("datetime2", "time"):
        kind = "timestamp" if t == "datetime2" else "time"
        return f"{kind}({min(column.scale, 6)}) without time zone"
    if t == "datetimeoffset":
        return f"timestamp({min(column.scale, 6)}) with time zone"
    if t in ("varchar", "char", "nvarchar", "nchar"):
        if column.max_length == -1:
            return "text"
        # varchar(n) holds n bytes and nvarchar(n) n UTF-16 units: never more than n characters.
        chars = column.max_length // 2 if t.startswith("n") else column.max_length
        return f"character varying({chars})"
    if t in ("varbinary", "binary"):
        return "bytea"
    return "text"


def select_expression(column: SourceColumn) -> str:
    """The SELECT list item that reads `column` as a value its Bronze type accepts."""
    ident = quote(column.name)
    t = column.type_name
    if t in _AS_TEXT:
        return f"{_AS_TEXT[t].format(c=ident)} AS {ident}"
    if t in _FIXED or t in (
        "decimal",
        "numeric",
        "float",
        "datetime2",
        "time",
        "datetimeoffset",
        "varchar",
        "char",
        "nvarchar",
        "nchar",
        "varbinary",
        "binary",
    ):
        return ident
    # An unknown (future or CLR) type: its text form is the one representation every type has.
    return f"CONVERT(nvarchar(max), {ident}) AS {ident}"


def cursor_text(column: SourceColumn, expression: str) -> str:
    """SQL rendering `expression` (a value of `column`'s type) as exact, re-parsable text."""
    t = column.type_name
    if t in ("timestamp", "rowversion", "binary", "varbinary"):
        return f"CONVERT(varchar(max), {expression}, 1)"  # 0x-prefixed hex
    if t in ("datetime", "datetime2", "smalldatetime", "date", "time"):
        return f"CONVERT(varchar(40), {expression}, 126)"  # ISO 8601, every digit kept
    if t == "datetimeoffset":
        return f"CONVERT(varchar(40), {expression}, 127)"  # ISO 8601 with the offset
    if t in ("float", "real"):
        return f"CONVERT(varchar(40), {expression}, 3)"  # 17 significant digits: lossless
    if t in ("money", "smallmoney"):
        return f"CONVERT(varchar(40), {expression}, 2)"  # all 4 decimals (style 0 rounds to 2)
    return f"CONVERT(nvarchar(4000), {expression})"


def cursor_literal(column: SourceColumn, value: str) -> str:
    """A watermark (text from `cursor_text`) as a value of the cursor column's type."""
    text = "'" + value.replace("'", "''") + "'"
    if column.type_name in ("timestamp", "rowversion"):
        return f"CONVERT(binary(8), {text}, 1)"  # rowversion compares as binary(8)
    if column.type_name in ("binary", "varbinary"):
        return f"CONVERT(varbinary(max), {text}, 1)"
    return f"CAST(N{text} AS {column.declared})"
