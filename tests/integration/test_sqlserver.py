"""`sqlserver-runner` against a real SQL Server: full load, incremental `>`, types, paging.

No SQL Server can run on this build machine (no image can be pulled and there is no Linux
package of the server), so these tests run only when `DK_TEST_MSSQL_URL` names one:

    DK_TEST_MSSQL_URL='mssql://sa:<password>@127.0.0.1:1433/master' \\
        .venv/bin/pytest tests/integration/test_sqlserver.py

for example with `docker run -e ACCEPT_EULA=Y -e MSSQL_SA_PASSWORD=… --network host
mcr.microsoft.com/mssql/server:2022-latest` on a machine that can pull it. Each test works in a
fresh database it creates (with ALLOW_SNAPSHOT_ISOLATION ON) and drops.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from tests.kit.databases import Database
from tests.kit.runners import Outcome, run_runner, runner_executable

pymssql = pytest.importorskip("pymssql")

URL = os.environ.get("DK_TEST_MSSQL_URL")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not URL,
        reason="no SQL Server can run on this machine: set DK_TEST_MSSQL_URL="
        "'mssql://user:password@host:port/database' to run these tests against a real server",
    ),
]

RUNNER = runner_executable("sqlserver")


@dataclass(frozen=True)
class MssqlDatabase:
    host: str
    port: int
    user: str
    password: str
    name: str

    def execute(self, statement: str) -> list[tuple[Any, ...]]:
        with pymssql.connect(
            server=self.host,
            port=str(self.port),
            user=self.user,
            password=self.password,
            database=self.name,
            autocommit=True,
            tds_version="7.4",
        ) as conn:
            cursor = conn.cursor()
            cursor.execute(statement)
            return list(cursor.fetchall()) if cursor.description else []

    def env(self) -> dict[str, str]:
        return {
            "DK_SOURCE__HOST": self.host,
            "DK_SOURCE__PORT": str(self.port),
            "DK_SOURCE__DATABASE": self.name,
            "DK_SOURCE__USER": self.user,
            "DK_SOURCE__PASSWORD": self.password,
            "DK_SOURCE__NAME": "crm",
        }


@pytest.fixture
def mssql_db() -> Iterator[MssqlDatabase]:
    parts = urlsplit(URL or "")
    server = MssqlDatabase(
        parts.hostname or "127.0.0.1",
        parts.port or 1433,
        unquote(parts.username or ""),
        unquote(parts.password or ""),
        parts.path.lstrip("/") or "master",
    )
    name = f"dk_{uuid.uuid4().hex[:12]}"
    server.execute(f"CREATE DATABASE [{name}]")
    server.execute(f"ALTER DATABASE [{name}] SET ALLOW_SNAPSHOT_ISOLATION ON")
    yield MssqlDatabase(server.host, server.port, server.user, server.password, name)
    server.execute(f"ALTER DATABASE [{name}] SET SINGLE_USER WITH ROLLBACK IMMEDIATE")
    server.execute(f"DROP DATABASE [{name}]")


def run(args: list[str], env: dict[str, str]) -> Outcome:
    return run_runner(args, env, timeout=600, executable=RUNNER)


@pytest.fixture
def env(mssql_db: MssqlDatabase, warehouse_db: Database) -> dict[str, str]:
    return {**mssql_db.env(), **warehouse_db.env("WAREHOUSE"), "DK_LOG_FORMAT": "json"}


TYPES_DDL = """
CREATE TABLE dbo.[Odd Types] (
    [Id] int NOT NULL PRIMARY KEY, [b] bit, [t] tinyint, [s] smallint, [g] bigint,
    [r] real, [f] float, [d] decimal(38, 10), [m] money, [sm] smallmoney, [da] date,
    [tm] time(7), [dt] datetime, [sd] smalldatetime, [d2] datetime2(7), [o] datetimeoffset(7),
    [u] uniqueidentifier, [vb] varbinary(max), [nv] nvarchar(50), [vc] varchar(20),
    [x] xml, [rv] rowversion
);
INSERT INTO dbo.[Odd Types] ([Id], b, t, s, g, r, f, d, m, sm, da, tm, dt, sd, d2, o, u, vb, nv,
                             vc, x) VALUES
 (1, 1, 255, -32768, 9223372036854775807, 3.5, 1.7976931348623157E308,
  1234567890123456789012345678.0123456789, -922337203685477.5808, 214748.3647, '0001-01-01',
  '23:59:59.9999999', '1753-01-01T00:00:00.003', '2079-06-06T23:59:00',
  '9999-12-31T23:59:59.1234567', '2024-02-29T23:59:59.1234567+05:30',
  '6F9619FF-8B86-D011-B42D-00C04FC964FF', 0x00FF10, N'ÄÖÜ ß 漢字 😀', 'plain', '<a b="1"/>'),
 (2, 0, 0, 0, 0, 0, 0, 0, 0, 0, '2000-01-01', '00:00:00', '2000-01-01', '2000-01-01',
  '2000-01-01', '2000-01-01T00:00:00-14:00', '00000000-0000-0000-0000-000000000000', 0x, N'',
  '', NULL),
 (3, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL);
"""


def test_full_load_keeps_every_type(
    mssql_db: MssqlDatabase, warehouse_db: Database, env: dict[str, str]
) -> None:
    mssql_db.execute(TYPES_DDL)
    outcome = run(["extract", "--table", "Odd Types"], env)
    assert outcome.code == 0, outcome.stderr
    assert outcome.result.tables[0].rows_written == 3
    types = dict(
        warehouse_db.execute(
            "select attname, format_type(atttypid, atttypmod) from pg_attribute "
            "where attrelid = 'bronze_crm.\"Odd Types\"'::regclass and attnum > 0"
        )
    )
    assert types["o"] == "timestamp(6) with time zone" and types["u"] == "uuid"
    assert types["m"] == "numeric(19,4)" and types["rv"] == "bytea"
    row = warehouse_db.execute(
        "select b, t, s, g, r, d, m, da::text, tm::text, dt::text, d2::text, o, u::text, vb, nv, "
        'x, length(rv) from bronze_crm."Odd Types" where "Id" = 1'
    )[0]
    assert row[:7] == (
        True,
        255,
        -32768,
        9223372036854775807,
        3.5,
        Decimal("1234567890123456789012345678.0123456789"),
        Decimal("-922337203685477.5808"),
    )
    assert row[7:11] == (
        "0001-01-01",
        "23:59:59.999999",
        "1753-01-01 00:00:00.003",
        "9999-12-31 23:59:59.123456",
    )
    assert row[11] == datetime(2024, 2, 29, 18, 29, 59, 123456, tzinfo=UTC)  # the same instant
    assert row[12] == "6f9619ff-8b86-d011-b42d-00c04fc964ff"
    assert bytes(row[13]) == b"\x00\xff\x10" and row[14] == "ÄÖÜ ß 漢字 😀"
    assert row[15] == '<a b="1"/>' and row[16] == 8
    assert warehouse_db.execute('select count(*) from bronze_crm."Odd Types" where b is null') == [
        (1,)
    ]


def test_incremental_reads_strictly_above_the_watermark(
    mssql_db: MssqlDatabase, warehouse_db: Database, env: dict[str, str]
) -> None:
    mssql_db.execute(
        "CREATE TABLE dbo.Orders (Id int PRIMARY KEY, Modified datetime2(7) NOT NULL, "
        "Amount decimal(12,2));"
        "INSERT INTO dbo.Orders VALUES (1, '2025-01-01T00:00:00.0000001', 1), "
        "(2, '2025-01-01T00:00:00.0000002', 2)"
    )
    args = ["extract", "--table", "Orders", "--mode", "incremental", "--cursor", "Modified"]
    first = run(args, env)
    assert first.code == 0, first.stderr
    assert first.result.tables[0].watermark_after == "2025-01-01T00:00:00.0000002"
    # Same microsecond, one tick later: only an exact (SQL Server side) `>` sees it as new.
    mssql_db.execute("INSERT INTO dbo.Orders VALUES (3, '2025-01-01T00:00:00.0000003', 3)")
    second = run(args, env)
    assert second.code == 0, second.stderr
    assert second.result.tables[0].rows_written == 1
    assert warehouse_db.execute(
        'select array_agg("Id" order by "Id") from bronze_crm."Orders"'
    ) == [([1, 2, 3],)]
    assert run(args, env).code == 99  # nothing above the watermark


def test_rowversion_cursor_compares_as_binary(
    mssql_db: MssqlDatabase, warehouse_db: Database, env: dict[str, str]
) -> None:
    mssql_db.execute(
        "CREATE TABLE dbo.Items (Id int PRIMARY KEY, Name nvarchar(20), Rv rowversion);"
        "INSERT INTO dbo.Items (Id, Name) VALUES (1, N'a'), (2, N'b')"
    )
    args = [
        "extract",
        "--table",
        "Items",
        "--mode",
        "incremental",
        "--cursor",
        "Rv",
        "--strategy",
        "merge",
    ]
    assert run(args, env).code == 0
    mssql_db.execute("UPDATE dbo.Items SET Name = N'b2' WHERE Id = 2")
    second = run(args, env)
    assert second.code == 0, second.stderr
    assert second.result.tables[0].rows_written == 1
    assert second.result.tables[0].watermark_after.startswith("0x")
    assert warehouse_db.execute('select "Name" from bronze_crm."Items" order by "Id"') == [
        ("a",),
        ("b2",),
    ]


def test_keyset_pages_read_every_row_once(
    mssql_db: MssqlDatabase, warehouse_db: Database, env: dict[str, str]
) -> None:
    mssql_db.execute(
        "CREATE TABLE dbo.Lines (OrderId int, [Line No] int, Note nvarchar(10), "
        "CONSTRAINT pk PRIMARY KEY (OrderId, [Line No]));"
        "INSERT INTO dbo.Lines SELECT o.n, l.n, N'x' FROM "
        "(SELECT TOP 20 ROW_NUMBER() OVER (ORDER BY object_id) n FROM sys.all_objects) o "
        "CROSS JOIN (SELECT TOP 7 ROW_NUMBER() OVER (ORDER BY object_id) n FROM sys.all_objects) l"
    )
    outcome = run(
        ["extract", "--table", "Lines"],
        {**env, "DK_SOURCE__PAGE_ROWS": "9", "DK_SOURCE__FETCH_ROWS": "4"},
    )
    assert outcome.code == 0, outcome.stderr
    assert warehouse_db.execute(
        'select count(*), count(distinct ("OrderId", "Line No")) from bronze_crm."Lines"'
    ) == [(140, 140)]
    plan = run(["plan", "--table", "Lines"], {**env, "DK_SOURCE__PAGE_ROWS": "9"})
    sql = plan.result.output["tables"][0]["sql"]
    assert sql.startswith("SELECT TOP (9)") and "ORDER BY [OrderId], [Line No]" in sql


def test_missing_table_fails_the_job_and_bad_login_exits_3(env: dict[str, str]) -> None:
    missing = run(["extract", "--table", "NoSuchTable"], env)
    assert missing.code == 1
    assert "does not exist" in missing.result.model_dump_json()
    wrong = "Wr0ng-Pa55word-Shown-Nowhere"
    login = run(["check"], {**env, "DK_SOURCE__PASSWORD": wrong})
    assert login.code == 3
    assert wrong not in login.stdout + login.stderr
