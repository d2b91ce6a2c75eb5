"""The SQL Server `Source` driven by the real Bronze loader into the real warehouse.

No SQL Server can run here, so the driver connection is a scripted stand-in that answers the
runner's catalog queries and keyset pages from rows shaped exactly as pymssql returns them
(`Decimal`, aware `datetime`, `uuid.UUID`, `bytes`, `bool`). Everything after the driver is
real: describe → plan → pages → batches → row encoder → relay → COPY → watermark and ledger.
`tests/integration/test_sqlserver.py` runs the same path against a real server when one is set.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

from datakit_contract.tables import LoadMode, Strategy, TableSpec
from datakit_core import state
from datakit_core.bronze import RunContext, load_table
from datakit_sqlserver import dialect
from datakit_sqlserver.config import SqlServerSourceSettings
from datakit_sqlserver.source import SqlServerSource
from tests.kit.databases import Database

pytestmark = pytest.mark.integration

COLUMNS = [  # name, type, max_length, precision, scale: as sys.columns describes them
    ("Id", "int", 4, 10, 0),
    ("Amount", "money", 8, 19, 4),
    ("At", "datetimeoffset", 10, 34, 7),
    ("Ref", "uniqueidentifier", 16, 0, 0),
    ("Blob", "varbinary", -1, 0, 0),
    ("Ok", "bit", 1, 1, 0),
    ("Name", "nvarchar", 80, 0, 0),
    ("Rv", "timestamp", 8, 0, 0),
]


def _row(i: int) -> tuple[Any, ...]:
    return (
        i,
        Decimal(i) / 4,
        datetime(2025, 1, 1, tzinfo=timezone(timedelta(hours=2))) + timedelta(minutes=i),
        uuid.UUID(int=i),
        bytes([i % 256]) * 3,
        i % 2 == 0,
        f"név {i}",
        i.to_bytes(8, "big"),
    )


class ScriptedConnection:
    """Answers the statements `SqlServerSource` sends, as SQL Server would for `rows`."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.statements: list[str] = []

    def cursor(self) -> ScriptedConnection:
        return self

    def execute(self, statement: str, params: object = None) -> None:
        self.statements.append(statement)
        self.result: list[tuple[Any, ...]] = []
        if statement == dialect.OBJECT_SQL:
            self.result = [(7, "U ", len(self.rows))]
        elif statement == dialect.COLUMNS_SQL:
            self.result = list(COLUMNS)
        elif statement == dialect.KEYS_SQL:
            self.result = [(True, 1, "Id")]
        elif statement == dialect.SNAPSHOT_ALLOWED_SQL:
            self.result = [(1,)]
        elif statement.startswith("SELECT CONVERT(varchar(max), MAX([Rv]), 1)"):
            rows = self._in_range(statement)
            top = max((r[7] for r in rows), default=None)
            self.result = [("0x" + top.hex().upper() if top else None,)]
        elif statement.startswith("SELECT TOP ("):
            top = int(statement.split("TOP (")[1].split(")")[0])
            after = re.search(r"\(\(\[Id\] > CAST\((\d+) AS int\)\)\)", statement)
            rows = [r for r in self._in_range(statement) if not after or r[0] > int(after[1])]
            self.result = sorted(rows)[:top]

    def _in_range(self, statement: str) -> list[tuple[Any, ...]]:
        after = re.search(r"\[Rv\] > CONVERT\(binary\(8\), '0x([0-9A-F]+)', 1\)", statement)
        upto = re.search(r"\[Rv\] <= CONVERT\(binary\(8\), '0x([0-9A-F]+)', 1\)", statement)
        return [
            r
            for r in self.rows
            if (not after or r[7] > bytes.fromhex(after[1]))
            and (not upto or r[7] <= bytes.fromhex(upto[1]))
        ]

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self.result

    def fetchmany(self, size: int) -> list[tuple[Any, ...]]:
        batch, self.result = self.result[:size], self.result[size:]
        return batch


def _load(warehouse_db: Database, conn: ScriptedConnection, spec: TableSpec) -> Any:
    settings = SqlServerSourceSettings.model_validate(
        {
            "name": "crm",
            "host": "sql",
            "database": "CRM",
            "user": "etl",
            "password": "pw",
            "page_rows": 10,
            "fetch_rows": 4,
        }
    )
    source = SqlServerSource(settings, conn)
    ctx = RunContext(str(uuid.uuid4()), "default", "sqlserver-runner", "test", 10)
    with warehouse_db.connect(autocommit=True) as wh:
        state.ensure_state_schema(wh)
        return load_table(wh, source, spec, ctx)


def test_full_then_incremental_on_a_rowversion_cursor(warehouse_db: Database) -> None:
    conn = ScriptedConnection([_row(i) for i in range(1, 26)])
    spec = TableSpec(
        name="dbo.Orders", mode=LoadMode.INCREMENTAL, cursor="Rv", strategy=Strategy.MERGE
    )
    first = _load(warehouse_db, conn, spec)
    assert first.status == "succeeded", first.error
    assert first.rows_written == 25 and first.watermark_after == "0x0000000000000019"
    pages = [s for s in conn.statements if s.startswith("SELECT TOP")]
    assert len(pages) == 3  # 10 + 10 + 5 rows
    got = warehouse_db.execute(
        'select "Id", "Amount", "At", "Ref", "Blob", "Ok", "Name", "Rv" '
        'from bronze_crm."Orders" order by "Id"'
    )
    assert got == [_row(i) for i in range(1, 26)]
    assert got[0][2] == datetime(2024, 12, 31, 22, 1, tzinfo=UTC)

    conn.rows = [*conn.rows[:5], (3, *_row(3)[1:6], "changed", (26).to_bytes(8, "big"))]
    second = _load(warehouse_db, conn, spec)
    assert second.status == "succeeded", second.error
    assert (second.rows_written, second.rows_replaced) == (1, 1)
    assert second.watermark_after == "0x000000000000001A"
    assert any(
        "WHERE [Rv] > CONVERT(binary(8), '0x0000000000000019', 1) "
        "AND [Rv] <= CONVERT(binary(8), '0x000000000000001A', 1)" in s
        for s in conn.statements
    )
    assert warehouse_db.execute('select "Name" from bronze_crm."Orders" where "Id" = 3') == [
        ("changed",)
    ]
    types = dict(
        warehouse_db.execute(
            "select attname, format_type(atttypid, atttypmod) from pg_attribute "
            "where attrelid = 'bronze_crm.\"Orders\"'::regclass and attnum > 0"
        )
    )
    assert types["Amount"] == "numeric(19,4)" and types["At"] == "timestamp(6) with time zone"
    assert types["Name"] == "character varying(40)" and types["Rv"] == "bytea"


def test_a_value_that_does_not_fit_fails_the_table_and_leaves_bronze_untouched(
    warehouse_db: Database,
) -> None:
    bad = (1, Decimal("1"), datetime(2025, 1, 1), *_row(1)[3:])  # a naive datetimeoffset
    result = _load(warehouse_db, ScriptedConnection([bad]), TableSpec(name="Orders"))
    assert result.status == "failed"
    assert "does not fit its Bronze column types" in (result.error or "")
    assert warehouse_db.execute(
        "select count(*) from pg_tables where schemaname = 'bronze_crm'"
    ) == [(0,)]
