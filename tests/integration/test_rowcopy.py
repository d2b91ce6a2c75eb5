"""`datakit_core.rowcopy` against the real warehouse: rows of every mapped type go in by binary
COPY and come back exactly equal."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from datakit_core.errors import JobFailed
from datakit_core.pgcopy import relay
from datakit_core.rowcopy import RowEncoder, is_c_accelerated, type_oid
from tests.kit.databases import Database

pytestmark = pytest.mark.integration

# Every Bronze type the SQL Server runner maps to, with the Python values its driver returns
# (extremes, zero, unicode, NULL). Values are what must come back from the warehouse.
CASES: list[tuple[str, list[Any]]] = [
    ("boolean", [True, False]),
    ("smallint", [0, 255, -32768, 32767]),  # tinyint and smallint
    ("integer", [-2147483648, 2147483647, 0]),
    ("bigint", [-9223372036854775808, 9223372036854775807]),
    ("real", [3.4028234663852886e38, -1.5, 0.0]),
    ("double precision", [1.7976931348623157e308, 5e-324, -0.1]),
    ("numeric(38,10)", [Decimal("1234567890123456789012345678.0123456789"), Decimal("-0E-10")]),
    ("numeric(19,4)", [Decimal("-922337203685477.5808"), Decimal("922337203685477.5807")]),
    ("numeric(10,4)", [Decimal("-214748.3648"), Decimal("214748.3647")]),
    ("numeric(5,0)", [Decimal("99999"), 12345]),  # an int into numeric is dumped exactly too
    ("date", [date(1, 1, 1), date(9999, 12, 31)]),
    ("time(6) without time zone", [time(0, 0), time(23, 59, 59, 999999)]),
    (
        "timestamp(3) without time zone",
        [datetime(1753, 1, 1), datetime(9999, 12, 31, 23, 59, 59, 997000)],
    ),
    ("timestamp(0) without time zone", [datetime(1900, 1, 1), datetime(2079, 6, 6, 23, 59)]),
    (
        "timestamp(6) without time zone",
        [datetime(1, 1, 1), datetime(2024, 2, 29, 12, 0, 0, 123456)],
    ),
    (
        "timestamp(6) with time zone",
        [
            datetime(2024, 2, 29, 23, 59, 59, 999999, timezone(timedelta(hours=5, minutes=30))),
            datetime(2001, 1, 1, tzinfo=timezone(timedelta(hours=-14))),
            datetime(2025, 6, 1, 8, 0, tzinfo=UTC),
        ],
    ),
    ("uuid", [uuid.UUID("6f9619ff-8b86-d011-b42d-00c04fc964ff"), uuid.UUID(int=0)]),
    ("bytea", [b"\x00\x00\x00\x00\x00\x00\x07\xd1", b"", bytes(range(256))]),
    ("character varying(50)", ["ÄÖÜ ß 漢字 😀", "", "tab\there\nnewline \\ backslash"]),
    ("character varying(128)", ["sysname"]),
    ("text", ["x" * 100_000, "<a b='1'/>"]),
]


def _rows() -> tuple[list[str], list[tuple[Any, ...]]]:
    """One column per case; row i holds each case's i-th value (NULL when it has fewer)."""
    types = [t for t, _ in CASES]
    depth = max(len(values) for _, values in CASES) + 1  # the last row is all NULL
    rows = [
        tuple(values[i] if i < len(values) else None for _, values in CASES) for i in range(depth)
    ]
    return types, rows


def _create(db: Database, types: list[str]) -> None:
    columns = ", ".join(f'"c{i}" {t}' for i, t in enumerate(types))
    db.execute(f"create table encoded (n serial primary key, {columns})")


def test_the_c_formatter_is_the_one_in_use() -> None:
    assert is_c_accelerated()


def test_every_mapped_type_round_trips_exactly(warehouse_db: Database) -> None:
    types, rows = _rows()
    _create(warehouse_db, types)
    encoder = RowEncoder(types)
    names = ", ".join(f'"c{i}"' for i in range(len(types)))
    with warehouse_db.connect() as conn:
        statement = psycopg.sql.SQL(f"copy encoded ({names}) from stdin (format binary)")
        # Batches of one, two and the rest: block boundaries fall between rows, anywhere.
        batches = [rows[:1], rows[1:3], [], rows[3:]]
        copied = relay(encoder.blocks(batches), conn, statement)
        conn.commit()
    assert copied == len(rows)
    # A real comes back through its shortest text form: read it as double to compare bits.
    wide = ", ".join(
        f'"c{i}"::double precision' if t == "real" else f'"c{i}"' for i, t in enumerate(types)
    )
    back = warehouse_db.execute(f"select {wide} from encoded order by n")
    assert len(back) == len(rows)
    for got, sent in zip(back, rows, strict=True):
        for type_, g, s in zip(types, got, sent, strict=True):
            if type_ == "numeric(5,0)" and isinstance(s, int):
                s = Decimal(s)
            assert (g == s and type(g) is type(s)) or (g is None and s is None), (type_, g, s)
    # Zones are kept as instants (timestamptz): compare the UTC offsets' instants explicitly.
    tz_index = types.index("timestamp(6) with time zone")
    instants = [r[tz_index] for r in back if r[tz_index] is not None]
    assert [i.astimezone(UTC) for i in instants] == [v.astimezone(UTC) for v in CASES[tz_index][1]]


def test_an_empty_stream_is_a_valid_copy(warehouse_db: Database) -> None:
    _create(warehouse_db, ["integer"])
    with warehouse_db.connect() as conn:
        copied = relay(
            RowEncoder(["integer"]).blocks([]),
            conn,
            psycopg.sql.SQL("copy encoded (c0) from stdin (format binary)"),
        )
        conn.commit()
    assert copied == 0


def test_blocks_count_rows_for_progress() -> None:
    blocks = list(RowEncoder(["integer", "text"]).blocks([[(1, "a"), (2, "b")], [(3, None)]]))
    assert [b.rows for b in blocks] == [2, 1, 0]
    assert blocks[0].data.startswith(b"PGCOPY\n\xff\r\n\x00")
    assert blocks[-1].data.endswith(b"\xff\xff")


def test_a_value_of_the_wrong_type_fails_the_job_naming_the_types() -> None:
    naive = datetime(2024, 1, 1)  # a timestamptz needs a zone
    with pytest.raises(JobFailed, match="timestamp with time zone"):
        list(RowEncoder(["timestamp with time zone"]).blocks([[(naive,)]]))


def test_unknown_types_are_refused_with_the_fix() -> None:
    with pytest.raises(JobFailed, match="Map the source column to a built-in type"):
        type_oid("mood")
    assert type_oid("timestamp(3) with time zone") == type_oid("timestamptz")
    assert type_oid("character varying(50)") == type_oid("varchar")
