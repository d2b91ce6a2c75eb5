"""`datakit_sqlserver.types`: every SQL Server type lands as an exact PostgreSQL type, and
cursor values keep every digit."""

from __future__ import annotations

import pytest

from datakit_core.rowcopy import type_oid
from datakit_sqlserver.types import (
    SourceColumn,
    bronze_type,
    cursor_literal,
    cursor_text,
    select_expression,
)
from tests.kit.sqlserver import col


def test_rowversion_cursor_is_read_as_hex_and_compared_as_binary8() -> None:
    rv = col("rv", "timestamp", 8)
    assert cursor_text(rv, "MAX([rv])") == "CONVERT(varchar(max), MAX([rv]), 1)"
    assert cursor_literal(rv, "0x00000000000007D1") == (
        "CONVERT(binary(8), '0x00000000000007D1', 1)"
    )


def test_temporal_cursors_keep_every_digit_and_cast_back_to_their_own_type() -> None:
    d2 = col("m", "datetime2", 8, 27, 7)
    assert cursor_text(d2, "MAX([m])") == "CONVERT(varchar(40), MAX([m]), 126)"
    assert cursor_literal(d2, "2025-01-01T10:00:00.1234567") == (
        "CAST(N'2025-01-01T10:00:00.1234567' AS datetime2(7))"
    )
    dto = col("o", "datetimeoffset", 10, 34, 7)
    assert cursor_text(dto, "MAX([o])") == "CONVERT(varchar(40), MAX([o]), 127)"
    assert cursor_literal(dto, "x'y") == "CAST(N'x''y' AS datetimeoffset(7))"
    money = col("m", "money", 8, 19, 4)
    assert cursor_text(money, "MAX([m])") == "CONVERT(varchar(40), MAX([m]), 2)"
    assert cursor_literal(col("n", "decimal", 9, 18, 2), "12.50") == (
        "CAST(N'12.50' AS decimal(18,2))"
    )


MAPPING = [
    (col("b", "bit", 1), "boolean", "[b]"),
    (col("t", "tinyint", 1), "smallint", "[t]"),
    (col("s", "smallint", 2), "smallint", "[s]"),
    (col("i", "int", 4), "integer", "[i]"),
    (col("g", "bigint", 8), "bigint", "[g]"),
    (col("r", "real", 4, 24), "real", "[r]"),
    (col("f", "float", 8, 53), "double precision", "[f]"),
    (col("d", "decimal", 17, 38, 10), "numeric(38,10)", "[d]"),
    (col("n", "numeric", 5, 5, 0), "numeric(5,0)", "[n]"),
    (col("m", "money", 8, 19, 4), "numeric(19,4)", "[m]"),
    (col("sm", "smallmoney", 4, 10, 4), "numeric(10,4)", "[sm]"),
    (col("da", "date", 3), "date", "[da]"),
    (col("tm", "time", 5, 16, 7), "time(6) without time zone", "[tm]"),
    (col("tm3", "time", 4, 12, 3), "time(3) without time zone", "[tm3]"),
    (col("dt", "datetime", 8), "timestamp(3) without time zone", "[dt]"),
    (col("sd", "smalldatetime", 4), "timestamp(0) without time zone", "[sd]"),
    (col("d2", "datetime2", 8, 27, 7), "timestamp(6) without time zone", "[d2]"),
    (col("d0", "datetime2", 6, 19, 0), "timestamp(0) without time zone", "[d0]"),
    (col("o", "datetimeoffset", 10, 34, 7), "timestamp(6) with time zone", "[o]"),
    (col("u", "uniqueidentifier", 16), "uuid", "[u]"),
    (col("vb", "varbinary", 100), "bytea", "[vb]"),
    (col("vm", "varbinary", -1), "bytea", "[vm]"),
    (col("bn", "binary", 16), "bytea", "[bn]"),
    (col("im", "image", 16), "bytea", "[im]"),
    (col("rv", "timestamp", 8), "bytea", "[rv]"),
    (col("nv", "nvarchar", 100), "character varying(50)", "[nv]"),
    (col("nm", "nvarchar", -1), "text", "[nm]"),
    (col("vc", "varchar", 30), "character varying(30)", "[vc]"),
    (col("vx", "varchar", -1), "text", "[vx]"),
    (col("nc", "nchar", 20), "character varying(10)", "[nc]"),
    (col("ch", "char", 3), "character varying(3)", "[ch]"),
    (col("tx", "text", 16), "text", "[tx]"),
    (col("nt", "ntext", 16), "text", "[nt]"),
    (col("sn", "sysname", 256), "character varying(128)", "[sn]"),
    (col("x", "xml", -1), "text", "CONVERT(nvarchar(max), [x]) AS [x]"),
    (col("v", "sql_variant", 8016), "text", "CONVERT(nvarchar(max), [v]) AS [v]"),
    (col("h", "hierarchyid", 892), "text", "[h].ToString() AS [h]"),
    (col("ge", "geography", -1), "text", "[ge].STAsText() AS [ge]"),
    (col("future", "vector", 100), "text", "CONVERT(nvarchar(max), [future]) AS [future]"),
]


@pytest.mark.parametrize(("column", "bronze", "select"), MAPPING, ids=[m[0].name for m in MAPPING])
def test_every_sql_server_type_maps_to_an_encodable_postgres_type(
    column: SourceColumn, bronze: str, select: str
) -> None:
    assert bronze_type(column) == bronze
    assert select_expression(column) == select
    assert type_oid(bronze) > 0  # the row encoder has a binary dumper for it


def test_declared_types_read_like_sql_server_ddl() -> None:
    assert col("nv", "nvarchar", 100).declared == "nvarchar(50)"
    assert col("vm", "varbinary", -1).declared == "varbinary(max)"
    assert col("d", "decimal", 9, 18, 2).declared == "decimal(18,2)"
    assert col("o", "datetimeoffset", 10, 34, 7).declared == "datetimeoffset(7)"
    assert col("i", "int", 4).declared == "int"
