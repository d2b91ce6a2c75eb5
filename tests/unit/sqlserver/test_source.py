"""`datakit_sqlserver.source`: the read plan's SQL, keyset paging, key literals, the transaction
a table is read in, and connecting, with the real driver (pymssql) against 127.0.0.1: a closed
port and a silent TCP server."""

from __future__ import annotations

import datetime as dt
import os
import uuid
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from datakit_core.errors import ConfigError, JobFailed, TransientError
from datakit_core.schema import Column, RowRange, SourceTable
from datakit_sqlserver import dialect
from datakit_sqlserver.config import SqlServerSourceSettings
from datakit_sqlserver.source import (
    ReadPlan,
    SqlServerSource,
    TableInfo,
    connect,
    key_literal,
    read_batches,
)
from datakit_sqlserver.types import bronze_type
from tests.kit.network import free_port
from tests.kit.sqlserver import SECRET, SOURCE, col, source_settings

# -- the read plan's SQL ---------------------------------------------------------------------------


class _CatalogOnly(SqlServerSource):
    """A source whose catalog is given: SQL text needs no connection."""

    describe_cached: SourceTable


def _source_with_table() -> _CatalogOnly:
    source = _CatalogOnly(source_settings(page_rows=1000), conn=None)
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
    source = _CatalogOnly(source_settings(page_rows=1000), conn=None)
    source._tables["dbo.Events"] = TableInfo((key, col("Name", "nvarchar", 80)), ("At",))
    table = SourceTable("dbo", "Events", (), ("At",))
    columns = (Column("At", bronze_type(key)), Column("Name", "character varying(40)"))

    statement = source.copy_statement(table, columns, RowRange()).splitlines()[0]

    if paged:
        assert statement.startswith("SELECT TOP (1000) ") and statement.endswith("ORDER BY [At]")
    else:
        assert statement == "SELECT [At], [Name] FROM [dbo].[Events]"


# -- keyset paging and key literals ---------------------------------------------------------------


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


# -- one transaction per table, at the chosen isolation -------------------------------------------


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
    source = SqlServerSource(source_settings(isolation=setting), session)
    with source.snapshot():
        session.statements.append("-- reads")
    assert session.statements[-4:] == [
        f"SET TRANSACTION ISOLATION LEVEL {level}",
        "BEGIN TRANSACTION",
        "-- reads",
        "IF @@TRANCOUNT > 0 COMMIT TRANSACTION",
    ]


def test_snapshot_required_but_not_allowed_is_a_config_error_with_the_fix() -> None:
    source = SqlServerSource(source_settings(isolation="snapshot"), _Session(0))
    with pytest.raises(ConfigError, match="ALLOW_SNAPSHOT_ISOLATION ON") as caught:
        source.isolation_level()
    assert caught.value.exit_code == 2


# -- connecting, with the real driver -------------------------------------------------------------


def test_a_closed_port_is_a_transient_error_naming_the_address() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(TransientError) as caught:
        connect(source_settings(port=port, connect_timeout=3), "test")
    message = str(caught.value)
    assert f"Cannot connect to the source `mssql://etl@127.0.0.1:{port}/CRM` (timeout 3 s)" in (
        message
    )
    assert "Connection refused" in message and SECRET not in message
    assert caught.value.exit_code == 3


def test_a_server_that_never_answers_is_a_transient_timeout(silent_server: int) -> None:
    with pytest.raises(TransientError, match=r"\(timeout 2 s\).*timed out"):
        connect(source_settings(port=silent_server, connect_timeout=2), "test")


def test_kerberos_login_points_mit_kerberos_at_the_keytab_and_sends_no_login_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    keytab, krb5 = tmp_path / "svc.keytab", tmp_path / "krb5.conf"
    keytab.write_bytes(b"\x05\x02")
    krb5.write_text("[libdefaults]\n default_realm = CORP.EXAMPLE.COM\n")
    monkeypatch.delenv("KRB5_CLIENT_KTNAME", raising=False)
    monkeypatch.delenv("KRB5_CONFIG", raising=False)
    port = free_port()
    settings = SqlServerSourceSettings.model_validate(
        {
            **{k: v for k, v in SOURCE.items() if k != "password"},
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
