"""The SQL Server runner without a server: SQL text, type mapping, paging, config, error mapping.

Connection errors come from the real driver (pymssql) against 127.0.0.1: a closed port and a
silent TCP server.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pymssql
import pytest

from datakit_core.errors import ConfigError, JobFailed, SourceTableNotFound, TransientError
from datakit_core.rowcopy import type_oid
from datakit_core.schema import Column, RowRange, SourceTable
from datakit_core.settings import load_config
from datakit_sqlserver import dialect
from datakit_sqlserver.config import SqlServerRunnerConfig, SqlServerSourceSettings
from datakit_sqlserver.errors import map_error
from datakit_sqlserver.source import (
    ReadPlan,
    SqlServerSource,
    TableInfo,
    connect,
    key_literal,
    read_batches,
)
from datakit_sqlserver.types import (
    SourceColumn,
    bronze_type,
    cursor_literal,
    cursor_text,
    select_expression,
)

SECRET = "S3cret-Never-Printed"
BASE = {"name": "crm", "host": "127.0.0.1", "database": "CRM", "user": "etl", "password": SECRET}


def col(name: str, type_name: str, max_length: int = 0, precision: int = 0, scale: int = 0):
    return SourceColumn(name, type_name, max_length, precision, scale)


# -- identifiers and SQL text --------------------------------------------------------------------


def test_identifiers_are_bracketed_and_closing_brackets_doubled() -> None:
    assert dialect.quote("Order Lines") == "[Order Lines]"
    assert dialect.quote("a]b") == "[a]]b]"
    assert dialect.quote("select") == "[select]"
    assert dialect.qualified("Sales", "Order]x") == "[Sales].[Order]]x]"
    assert dialect.string_literal("O'Brien") == "N'O''Brien'"


def test_first_page_is_top_n_ordered_by_the_key_without_a_key_condition() -> None:
    sql = dialect.page_select("[dbo].[T]", ["[id]", "[v]"], ["id"], [], 500)
    assert sql == "SELECT TOP (500) [id], [v] FROM [dbo].[T] ORDER BY [id]"


def test_next_page_seeks_after_the_last_composite_key_within_the_range() -> None:
    sql = dialect.page_select(
        "[dbo].[T]",
        ["[a]", "[b]", "[c]"],
        ["a", "b", "c"],
        ["[u] > 5", "[u] <= 9"],
        100,
        ["1", "N'x'", "3"],
    )
    assert sql == (
        "SELECT TOP (100) [a], [b], [c] FROM [dbo].[T] WHERE [u] > 5 AND [u] <= 9 AND "
        "(([a] > 1) OR ([a] = 1 AND [b] > N'x') OR ([a] = 1 AND [b] = N'x' AND [c] > 3)) "
        "ORDER BY [a], [b], [c]"
    )


def test_a_table_without_key_is_one_streamed_select_without_order_by() -> None:
    sql = dialect.stream_select("[dbo].[Log]", ["[msg]"], ["[at] > CAST(N'x' AS date)"])
    assert sql == "SELECT [msg] FROM [dbo].[Log] WHERE [at] > CAST(N'x' AS date)"
    assert "ORDER BY" not in sql


def test_watermark_range_is_strictly_above_and_at_most_the_upper_bound() -> None:
    assert dialect.range_conditions("Modified At", "A", "B") == [
        "[Modified At] > A",
        "[Modified At] <= B",
    ]
    assert dialect.range_conditions("c", None, "B") == ["[c] <= B"]
    assert dialect.range_conditions(None, "A", "B") == []


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


def test_source_read_plan_sql_for_full_and_incremental_reads() -> None:
    source = _source_with_table()
    table = source.describe_cached
    columns = (Column("Id", "integer"), Column("Name", "character varying(40)"))
    full = source.copy_statement(table, columns, RowRange())
    assert full.splitlines()[0] == (
        "SELECT TOP (1000) [Id], [Name] FROM [dbo].[Cust omers] ORDER BY [Id]"
    )
    assert "-- next pages: the same with AND (([Id] > <last Id>))" in full
    rows = RowRange("Modified", "2025-01-01T00:00:00", "2025-02-01T00:00:00.1234567")
    incremental = source.copy_statement(table, columns, rows)
    assert incremental.splitlines()[0] == (
        "SELECT TOP (1000) [Id], [Name] FROM [dbo].[Cust omers] "
        "WHERE [Modified] > CAST(N'2025-01-01T00:00:00' AS datetime2(7)) "
        "AND [Modified] <= CAST(N'2025-02-01T00:00:00.1234567' AS datetime2(7)) ORDER BY [Id]"
    )
    keys_only_without_page_key = source.copy_statement(table, (columns[1],), RowRange())
    assert keys_only_without_page_key == "SELECT [Name] FROM [dbo].[Cust omers]"


@pytest.mark.parametrize(
    ("key", "paged"),
    [
        (col("At", "datetime2", 8, 27, 7), False),  # 100 ns: the driver returns microseconds
        (col("At", "datetimeoffset", 10, 34, 7), False),
        (col("At", "time", 5, 16, 7), False),
        (col("At", "datetime2", 8, 26, 6), True),
        (col("At", "datetime", 8), True),
        (col("At", "int", 4), True),
    ],
    ids=lambda v: v.declared if hasattr(v, "declared") else str(v),
)
def test_a_key_the_driver_cannot_return_exactly_is_not_paged(key: Any, paged: bool) -> None:
    source = _CatalogOnly(_settings(page_rows=1000), conn=None)
    source._tables["dbo.Events"] = TableInfo((key, col("Name", "nvarchar", 80)), ("At",))
    table = SourceTable("dbo", "Events", (), ("At",))
    columns = (Column("At", bronze_type(key)), Column("Name", "character varying(40)"))

    statement = source.copy_statement(table, columns, RowRange()).splitlines()[0]

    if paged:
        assert statement.startswith("SELECT TOP (1000) ") and statement.endswith("ORDER BY [At]")
    else:
        assert statement == "SELECT [At], [Name] FROM [dbo].[Events]"


# -- type mapping --------------------------------------------------------------------------------

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
    type_oid(bronze)  # the row encoder has a binary dumper for it


def test_declared_types_read_like_sql_server_ddl() -> None:
    assert col("nv", "nvarchar", 100).declared == "nvarchar(50)"
    assert col("vm", "varbinary", -1).declared == "varbinary(max)"
    assert col("d", "decimal", 9, 18, 2).declared == "decimal(18,2)"
    assert col("o", "datetimeoffset", 10, 34, 7).declared == "datetimeoffset(7)"
    assert col("i", "int", 4).declared == "int"


# -- keyset paging and batching ------------------------------------------------------------------


class PagedTable:
    """Answers the page statements `read_batches` sends, from an in-memory sorted table: what a
    SQL Server would return for `TOP (n) … WHERE id > last ORDER BY id`."""

    def __init__(self, ids: list[int], fetch_rows: int) -> None:
        self.rows = [(i, f"row {i}") for i in sorted(ids)]
        self.fetch_rows = fetch_rows
        self.statements: list[str] = []

    def __call__(self, statement: str) -> Iterator[Sequence[tuple[Any, ...]]]:
        self.statements.append(statement)
        after = (
            int(statement.split("[id] > CAST(")[1].split(" ")[0]) if "[id] >" in statement else None
        )
        top = int(statement.split("TOP (")[1].split(")")[0])
        page = [r for r in self.rows if after is None or r[0] > after][:top]
        for start in range(0, len(page), self.fetch_rows):
            yield page[start : start + self.fetch_rows]


def _plan(page_rows: int) -> ReadPlan:
    return ReadPlan(
        table="[dbo].[T]",
        projection=("[id]", "[v]"),
        conditions=(),
        key=("id",),
        key_positions=(0,),
        key_columns=(col("id", "int", 4),),
        page_rows=page_rows,
    )


@pytest.mark.parametrize(
    ("count", "page_rows", "fetch_rows"),
    [
        (0, 10, 3),
        (1, 10, 3),
        (10, 10, 3),
        (25, 10, 3),
        (30, 10, 10),
        (7, 1, 1),
    ],
)
def test_pages_cover_every_row_once_in_batches_of_fetch_rows(
    count: int, page_rows: int, fetch_rows: int
) -> None:
    table = PagedTable(list(range(100, 100 + count * 7, 7)), fetch_rows)
    batches = list(read_batches(_plan(page_rows), table))
    assert [r for b in batches for r in b] == table.rows
    assert all(0 < len(b) <= fetch_rows for b in batches)
    # Pages stop at the first short page: a full last page costs one empty page more.
    assert len(table.statements) == count // page_rows + 1
    assert "[id] >" not in table.statements[0]
    for previous_page_end, statement in zip(
        table.rows[page_rows - 1 :: page_rows], table.statements[1:], strict=False
    ):
        assert f"(([id] > CAST({previous_page_end[0]} AS int)))" in statement


def test_key_values_render_as_literals_of_the_key_type() -> None:
    assert key_literal(42, col("i", "bigint", 8)) == "CAST(42 AS bigint)"
    assert key_literal(Decimal("1.50"), col("d", "decimal", 9, 18, 2)) == (
        "CAST(1.50 AS decimal(18,2))"
    )
    assert key_literal(Decimal("1E+2"), col("d", "decimal", 9, 18, 0)) == (
        "CAST(100 AS decimal(18,0))"
    )
    assert key_literal("O'Brien", col("s", "nvarchar", 20)) == "CAST(N'O''Brien' AS nvarchar(10))"
    u = uuid.UUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")
    assert key_literal(u, col("u", "uniqueidentifier", 16)) == (
        "CAST(N'6f9619ff-8b86-d011-b42d-00c04fc964ff' AS uniqueidentifier)"
    )
    assert key_literal(b"\x00\x01", col("b", "binary", 2)) == "0x0001"
    assert key_literal(dt.date(2024, 2, 29), col("d", "date", 3)) == ("CAST(N'2024-02-29' AS date)")
    assert key_literal(dt.datetime(2024, 1, 1, 0, 0, 0, 3000), col("t", "datetime", 8)) == (
        "CAST(CAST(N'2024-01-01T00:00:00.003000' AS datetime2(7)) AS datetime)"
    )
    with pytest.raises(JobFailed, match="holds NULL"):
        key_literal(None, col("i", "int", 4))


# -- configuration -------------------------------------------------------------------------------


def _config(**source: Any) -> SqlServerRunnerConfig:
    environ = {"DK_WAREHOUSE__HOST": "h", "DK_WAREHOUSE__DBNAME": "w", "DK_WAREHOUSE__USER": "u"}
    return load_config(
        SqlServerRunnerConfig,
        flags={f"source.{k}": v for k, v in source.items()},
        environ=environ,
    )


def test_sql_login_needs_user_and_password_and_hides_the_password() -> None:
    config = _config(**BASE)
    assert config.source.display() == "mssql://etl@127.0.0.1:1433/CRM"
    assert SECRET not in repr(config) and SECRET not in config.model_dump_json()
    with pytest.raises(ConfigError, match="needs a password: set DK_SOURCE__PASSWORD"):
        _config(**{**BASE, "password": None})


def test_kerberos_needs_a_principal_and_a_readable_keytab(tmp_path: Path) -> None:
    kerberos = {k: v for k, v in BASE.items() if k not in ("password", "user")}
    kerberos["auth"] = "kerberos"
    with pytest.raises(ConfigError, match="principal `name@REALM`"):
        _config(**kerberos, user="etl")
    with pytest.raises(ConfigError, match="does not exist or is not readable"):
        _config(**kerberos, user="svc@CORP.EXAMPLE.COM", keytab=str(tmp_path / "none.keytab"))
    with pytest.raises(ConfigError, match="not a password"):
        _config(**kerberos, user="svc@CORP.EXAMPLE.COM", password=SECRET)
    keytab = tmp_path / "svc.keytab"
    keytab.write_bytes(b"\x05\x02")
    config = _config(**kerberos, user="svc@CORP.EXAMPLE.COM", keytab=str(keytab))
    assert config.source.keytab == keytab


def test_spec_describes_every_source_field() -> None:
    schema = SqlServerRunnerConfig.model_json_schema()
    settings = schema["$defs"]["SqlServerSourceSettings"]["properties"]
    assert {"auth", "keytab", "krb5_config", "page_rows", "isolation"} <= set(settings)
    assert all(field.get("description") for field in settings.values())


# -- errors → exit codes, with the real driver ---------------------------------------------------


def _settings(**overrides: Any) -> SqlServerSourceSettings:
    return SqlServerSourceSettings.model_validate({**BASE, **overrides})


def test_a_closed_port_is_a_transient_error_naming_the_address() -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    with pytest.raises(TransientError) as caught:
        connect(_settings(port=port, connect_timeout=3), "test")
    message = str(caught.value)
    assert f"Cannot connect to the source `mssql://etl@127.0.0.1:{port}/CRM` (timeout 3 s)" in (
        message
    )
    assert "Connection refused" in message and SECRET not in message
    assert caught.value.exit_code == 3


def test_a_server_that_never_answers_is_a_transient_timeout(silent_server: int) -> None:
    with pytest.raises(TransientError, match=r"\(timeout 2 s\).*timed out"):
        connect(_settings(port=silent_server, connect_timeout=2), "test")


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (18456, TransientError),  # login failed
        (4060, TransientError),  # cannot open database
        (1205, TransientError),  # deadlock victim
        (20047, TransientError),  # DB-Lib: dead connection
        (208, SourceTableNotFound),  # invalid object name
        (207, JobFailed),  # invalid column name
        (8115, JobFailed),  # arithmetic overflow
    ],
)
def test_server_errors_map_to_the_exit_code_contract(number: int, expected: type) -> None:
    noise = b"DB-Lib error message 20018, severity 16:\nGeneral SQL Server error: Check messages\n"
    exc = pymssql.OperationalError((number, b"Some message." + noise))
    mapped = map_error(exc, "Reading `x`")
    assert type(mapped) is expected
    assert mapped.exit_code == {TransientError: 3}.get(expected, 1)
    assert "Reading `x` failed: Some message" in str(mapped)
    assert "DB-Lib error message" not in str(mapped)


# -- helpers -------------------------------------------------------------------------------------


class _CatalogOnly(SqlServerSource):
    """A source whose catalog is given: SQL text needs no connection."""

    describe_cached: SourceTable


def _source_with_table() -> _CatalogOnly:
    source = _CatalogOnly(_settings(page_rows=1000), conn=None)
    columns = (
        col("Id", "int", 4),
        col("Name", "nvarchar", 80),
        col("Modified", "datetime2", 8, 27, 7),
    )
    source._tables["dbo.Cust omers"] = TableInfo(columns, ("Id",))
    source.describe_cached = SourceTable(
        "dbo", "Cust omers", tuple(Column(c.name, bronze_type(c)) for c in columns), ("Id",)
    )
    return source


# -- isolation -----------------------------------------------------------------------------------


class _Session:
    """Records statements; answers the snapshot-isolation query with `snapshot_state`."""

    def __init__(self, snapshot_state: int) -> None:
        self.snapshot_state = snapshot_state
        self.statements: list[str] = []
        self.result: list[tuple[Any, ...]] = []

    def cursor(self) -> _Session:
        return self

    def execute(self, statement: str, params: object = None) -> None:
        self.statements.append(statement)
        allowed = statement == dialect.SNAPSHOT_ALLOWED_SQL
        self.result = [(self.snapshot_state,)] if allowed else []

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.result


@pytest.mark.parametrize(
    ("setting", "state", "level"),
    [
        ("auto", 1, "SNAPSHOT"),
        ("auto", 0, "READ COMMITTED"),
        ("snapshot", 1, "SNAPSHOT"),
        ("read_committed", 1, "READ COMMITTED"),
    ],
)
def test_a_table_is_read_in_one_transaction_at_the_chosen_isolation(
    setting: str, state: int, level: str
) -> None:
    session = _Session(state)
    source = SqlServerSource(_settings(isolation=setting), session)
    with source.snapshot():
        session.statements.append("-- reads")
    assert session.statements[-4:] == [
        f"SET TRANSACTION ISOLATION LEVEL {level}",
        "BEGIN TRANSACTION",
        "-- reads",
        "IF @@TRANCOUNT > 0 COMMIT TRANSACTION",
    ]


def test_snapshot_required_but_not_allowed_is_a_config_error_with_the_fix() -> None:
    source = SqlServerSource(_settings(isolation="snapshot"), _Session(0))
    with pytest.raises(ConfigError, match="ALLOW_SNAPSHOT_ISOLATION ON") as caught:
        source.isolation_level()
    assert caught.value.exit_code == 2


def test_kerberos_login_points_mit_kerberos_at_the_keytab_and_sends_no_login_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keytab, krb5 = tmp_path / "svc.keytab", tmp_path / "krb5.conf"
    keytab.write_bytes(b"\x05\x02")
    krb5.write_text("[libdefaults]\n default_realm = CORP.EXAMPLE.COM\n")
    monkeypatch.delenv("KRB5_CLIENT_KTNAME", raising=False)
    monkeypatch.delenv("KRB5_CONFIG", raising=False)
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    settings = SqlServerSourceSettings.model_validate(
        {
            **{k: v for k, v in BASE.items() if k != "password"},
            "auth": "kerberos",
            "user": "svc_etl@CORP.EXAMPLE.COM",
            "keytab": str(keytab),
            "krb5_config": str(krb5),
            "port": port,
            "connect_timeout": 2,
        }
    )
    with pytest.raises(TransientError, match=r"mssql://svc_etl@CORP.EXAMPLE.COM@127.0.0.1"):
        connect(settings, "test")
    assert os.environ["KRB5_CLIENT_KTNAME"] == str(keytab)
    assert os.environ["KRB5_CONFIG"] == str(krb5)
