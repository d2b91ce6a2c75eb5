"""The source tables the runners are tested on: one with every awkward type and identifier
(`"Odd Table"`), and `orders`, a plain table with a key and a growing cursor."""

from __future__ import annotations

from typing import Any

from tests.kit.databases import Database

ODD_TABLE_DDL = """
create type mood as enum ('sad', 'ok', 'happy');
create domain positive_int as integer check (value > 0);
create table "Odd Table" (
    "Id" integer primary key,
    "select" text,
    "Mixed Case" varchar(20),
    n numeric(38, 10),
    n_free numeric,
    ts timestamptz,
    tsn timestamp(3),
    d date,
    tm time,
    ttz timetz,
    iv interval,
    b boolean,
    raw bytea,
    j json,
    jb jsonb,
    ints integer[],
    texts text[],
    u uuid,
    m mood,
    moods mood[],
    dom positive_int,
    f4 real,
    f8 double precision,
    addr inet,
    big bigint
);
insert into "Odd Table" values
 (1, E'tab\\there\\nnewline \\\\ backslash', 'ÄÖÜ ß 漢字 😀', 12345678901234567890.0123456789,
  'NaN', '2024-02-29 23:59:59.999999+05:30', '1999-12-31 23:59:59.123', '0001-01-01', '24:00:00',
  '12:00:00-03', '1 year 2 mons 3 days 04:05:06.789', true, '\\x00ff10', '{"a": [1, 2.50, "x"]}',
  '{"b": {"c": null}}', '{1,NULL,3}', '{"with,comma","with \\"quote\\"",NULL}',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', '{sad,ok}', 7, 3.4028235e38,
  1.7976931348623157e308, '192.168.1.0/24', 9223372036854775807),
 (2, '', '', -0.0000000001, 1e-30, 'infinity', '-infinity', 'infinity', '00:00:00', '00:00:00+14',
  '-178000000 years', false, '', 'null', '[]', '{}', '{}', '00000000-0000-0000-0000-000000000000',
  'sad', '{}', 1, 'NaN', '-Infinity', '::1', -9223372036854775808),
 (3, null, null, null, null, null, null, null, null, null, null, null, null, null, null, null,
  null, null, null, null, null, null, null, null, null);
"""

ODD_TABLE_COLUMNS = [
    '"Id"',
    '"select"',
    '"Mixed Case"',
    "n",
    "n_free",
    "ts",
    "tsn",
    "d",
    "tm",
    "ttz",
    "iv",
    "b",
    "raw",
    "j",
    "jb",
    "ints",
    "texts",
    "u",
    "m",
    "moods",
    "dom",
    "f4",
    "f8",
    "addr",
    "big",
]


def rows_as_text(
    db: Database, table: str, columns: list[str], order: str = '"Id"'
) -> list[tuple[Any, ...]]:
    """`columns` of `table` in PostgreSQL's text form: equal exactly when the values are."""
    projection = ", ".join(f"{c}::text" for c in columns)
    return db.execute(f"select {projection} from {table} order by {order}")


def seed_orders(db: Database, count: int) -> None:
    """Create `orders` with ids 1..count, `updated_at` growing one second per id."""
    db.execute(
        """
        create table orders (
            id bigint primary key,
            customer text not null,
            amount numeric(15, 2) not null,
            updated_at timestamptz not null default now()
        );
        insert into orders (id, customer, amount, updated_at)
        select g, 'customer ' || (g % 97), g * 1.25,
               timestamptz '2024-01-01' + g * interval '1 second'
        from generate_series(1, %s) g;
        """.replace("%s", str(count))
    )
