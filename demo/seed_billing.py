"""Seed the globex tenant's demo source: a small CRM/billing database, the same on every run.

Six tables in database `globex_erp` (created on the demo source server when missing): `plans`,
`accounts`, `contacts`, `subscriptions`, `invoices` (one per subscription and month) and
`payments`. The rows come from a fixed random seed and fixed dates (the data ends on `AS_OF`), so
two seeds hold the same rows, byte for byte, and a Gold number can be checked against the source.
Every table has an `updated_at` cursor: incremental loads and merges see what changed.

`seed_billing(...)` drops and recreates the six tables in one transaction (idempotent: a second
seed leaves the same database); `apply_billing_changes(conn)` is the demo's change batch: open
invoices paid, a subscription grown, a contact's new address, a payment bounced (deleted).

Usage:
    PGPASSWORD=... python -m demo.seed_billing --port 54321 --dbname globex_erp --user erp
"""

from __future__ import annotations

import json
import logging
import random
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import click
import psycopg
from psycopg import sql

log = logging.getLogger("seed_billing")

Plan = tuple[int, str, str, Decimal]  # id, code, name, monthly price of a seat

SEED = 20240601
AS_OF = datetime(2024, 7, 1, tzinfo=UTC)  # the data set's "now": nothing happens after it
FIRST_MONTH = date(2023, 1, 1)
LAST_MONTH = date(2024, 6, 1)  # the last month invoiced
ACCOUNTS = 240
CHANGED_AT = AS_OF + timedelta(days=1)  # when the change batch happens

PLANS: tuple[Plan, ...] = (
    (1, "starter", "Starter", Decimal("29.00")),
    (2, "team", "Team", Decimal("79.00")),
    (3, "business", "Business", Decimal("199.00")),
    (4, "enterprise", "Enterprise", Decimal("499.00")),
)
INDUSTRIES = ("software", "retail", "logistics", "health", "finance", "media", "manufacturing")
COUNTRIES = ("DE", "FR", "NL", "GB", "US", "ES", "IT", "SE", "PL", "CH")
NAME_PARTS = (
    ("Blue", "Red", "North", "Swift", "Bright", "Iron", "Silver", "Green", "Quiet", "Bold"),
    ("River", "Peak", "Harbor", "Forge", "Field", "Stone", "Wave", "Grove", "Bridge", "Lake"),
    ("Labs", "Systems", "Works", "Group", "Trading", "Partners"),
)
FIRST_NAMES = ("Ada", "Ben", "Chloe", "Dev", "Elena", "Farid", "Greta", "Hugo", "Iris", "Jonas")
LAST_NAMES = ("Meyer", "Dubois", "Jansen", "Smith", "Garcia", "Rossi", "Berg", "Nowak", "Keller")
TITLES = ("CFO", "Head of Finance", "Office Manager", "CTO", "Accountant", "Founder")
METHODS = ("card", "transfer", "direct_debit")

SCHEMA = """
create table plans (
    plan_id integer primary key,
    plan_code text not null unique,
    plan_name text not null,
    monthly_price numeric(10, 2) not null,
    currency char(3) not null,
    updated_at timestamptz not null
);
create table accounts (
    account_id integer primary key,
    account_name text not null,
    industry text not null,
    country char(2) not null,
    created_at timestamptz not null,
    updated_at timestamptz not null
);
create table contacts (
    contact_id integer primary key,
    account_id integer not null references accounts,
    full_name text not null,
    email text not null,
    job_title text not null,
    is_primary boolean not null,
    updated_at timestamptz not null
);
create table subscriptions (
    subscription_id integer primary key,
    account_id integer not null references accounts,
    plan_id integer not null references plans,
    seats integer not null,
    status text not null,
    started_on date not null,
    ended_on date,
    updated_at timestamptz not null
);
create table invoices (
    invoice_id integer primary key,
    subscription_id integer not null references subscriptions,
    account_id integer not null references accounts,
    period_start date not null,
    issued_at timestamptz not null,
    due_on date not null,
    amount numeric(12, 2) not null,
    currency char(3) not null,
    status text not null,
    updated_at timestamptz not null
);
create table payments (
    payment_id integer primary key,
    invoice_id integer not null references invoices,
    paid_at timestamptz not null,
    amount numeric(12, 2) not null,
    method text not null,
    updated_at timestamptz not null
);
create index on invoices (updated_at);
create index on payments (updated_at);
"""
TABLES = ("plans", "accounts", "contacts", "subscriptions", "invoices", "payments")


@dataclass
class Period:
    """A subscription's time on one plan; `ended` is its last day (None while it runs)."""

    plan: Plan
    started: date
    ended: date | None = None


@dataclass
class BillingData:
    """The rows of every table, in insertion order (parents before children)."""

    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: {t: [] for t in TABLES})

    def add(self, table: str, *values: Any) -> None:
        self.rows[table].append(values)


def months(first: date, last: date) -> list[date]:
    """First days of the months from `first` to `last`, both included."""
    found, month = [], first.replace(day=1)
    while month <= last:
        found.append(month)
        month = (month + timedelta(days=32)).replace(day=1)
    return found


def at(day: date, hour: int = 9) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


def generate(seed: int = SEED) -> BillingData:
    """The whole data set from `seed`: the same rows for the same seed."""
    rng = random.Random(seed)
    data = BillingData()
    for plan_id, code, name, price in PLANS:
        data.add("plans", plan_id, code, name, price, "EUR", at(date(2022, 12, 1)))
    all_months = months(FIRST_MONTH, LAST_MONTH)
    contact_id = subscription_id = invoice_id = payment_id = 0
    for account_id in range(1, ACCOUNTS + 1):
        words = [rng.choice(part) for part in NAME_PARTS]
        created = at(date(2022, 10, 1) + timedelta(days=rng.randrange(600)), hour=rng.randrange(24))
        domain = f"{words[0]}{words[1]}".lower() + ".example"
        data.add(
            "accounts",
            account_id,
            " ".join(words),
            rng.choice(INDUSTRIES),
            rng.choice(COUNTRIES),
            created,
            created + timedelta(days=rng.randrange(30)),
        )
        for number in range(rng.randint(1, 5)):
            contact_id += 1
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            data.add(
                "contacts",
                contact_id,
                account_id,
                f"{first} {last}",
                f"{first}.{last}{contact_id}@{domain}".lower(),
                rng.choice(TITLES),
                number == 0,
                created + timedelta(hours=number + 1),
            )
        # Not every account subscribes; some move to a bigger plan later.
        first_month = (created.date() + timedelta(days=32)).replace(day=1)
        if rng.random() < 0.12 or first_month > LAST_MONTH:
            continue
        plan = rng.choice(PLANS[:3])
        periods = [Period(plan, first_month)]
        if rng.random() < 0.2 and first_month < date(2024, 3, 1):
            moved = first_month + timedelta(days=31 * rng.randint(2, 9))
            moved = min(moved, date(2024, 5, 1)).replace(day=1)
            periods[0].ended = moved - timedelta(days=1)
            periods.append(Period(PLANS[min(plan[0], 3)], moved))  # the next plan up
        if rng.random() < 0.15:
            end = (periods[-1].started + timedelta(days=31 * rng.randint(1, 8))).replace(day=1)
            if end <= LAST_MONTH:
                periods[-1].ended = end - timedelta(days=1)
        seats = rng.choice((1, 2, 3, 5, 8, 12))
        for period in periods:
            plan, started, ended = period.plan, period.started, period.ended
            subscription_id += 1
            status = "cancelled" if ended is not None else "active"
            changed = at(ended) if ended is not None else at(started)
            data.add(
                "subscriptions",
                subscription_id,
                account_id,
                plan[0],
                seats,
                status,
                started,
                ended,
                changed,
            )
            last_billed = min(ended or LAST_MONTH, LAST_MONTH)
            for month in months(started, last_billed):
                if month not in all_months:
                    continue
                invoice_id += 1
                issued = at(month)
                amount = plan[3] * seats
                void = rng.random() < 0.02
                paid_after = None if void else _paid_after(rng, month)
                status = "void" if void else "open" if paid_after is None else "paid"
                payments = []
                if paid_after is not None:
                    paid_at = issued + timedelta(days=paid_after, hours=rng.randrange(8))
                    split = rng.random() < 0.05 and paid_at + timedelta(days=3) < AS_OF
                    parts = [amount / 2, amount - amount / 2] if split else [amount]
                    for part_number, part in enumerate(parts):
                        payment_id += 1
                        when = paid_at + timedelta(days=3 * part_number)
                        payments.append((payment_id, invoice_id, when, part, rng.choice(METHODS)))
                updated = max([issued, *(p[2] for p in payments)])
                data.add(
                    "invoices",
                    invoice_id,
                    subscription_id,
                    account_id,
                    month,
                    issued,
                    month + timedelta(days=14),
                    amount,
                    "EUR",
                    status,
                    updated + timedelta(days=2) if void else updated,
                )
                for payment in payments:
                    data.add("payments", *payment, payment[2])
    return data


def _paid_after(rng: random.Random, month: date) -> int | None:
    """Days from issue to payment, None while unpaid: recent invoices are often still open."""
    days = rng.randrange(1, 25)
    if at(month) + timedelta(days=days) >= AS_OF or rng.random() < 0.03:
        return None
    return days


def seed_billing(
    *, host: str, port: int, dbname: str, user: str, password: str | None = None
) -> dict[str, int]:
    """Create `dbname` when missing, then (re)create and fill the six tables in one transaction;
    returns the rows per table. `password=None` lets libpq read PGPASSWORD."""
    connection: dict[str, Any] = {"host": host, "port": port, "user": user, "password": password}
    with psycopg.connect(**connection, dbname="postgres", autocommit=True) as admin:
        found = admin.execute("select 1 from pg_database where datname = %s", (dbname,)).fetchone()
        if found is None:
            admin.execute(sql.SQL("create database {}").format(sql.Identifier(dbname)))
            log.info("created database %s", dbname)
    data = generate()
    with (
        psycopg.connect(**connection, dbname=dbname, application_name="seed_billing") as conn,
        conn.transaction(),
        conn.cursor() as cur,
    ):
        cur.execute(
            sql.SQL("drop table if exists {} cascade").format(
                sql.SQL(", ").join(map(sql.Identifier, reversed(TABLES)))
            )
        )
        cur.execute(SCHEMA)
        for table in TABLES:
            with cur.copy(sql.SQL("copy {} from stdin").format(sql.Identifier(table))) as copy:
                for row in data.rows[table]:
                    copy.write_row(row)
    counts = {table: len(rows) for table, rows in data.rows.items()}
    log.info("seeded %s:%s/%s: %s", host, port, dbname, counts)
    return counts


@dataclass(frozen=True)
class BillingChanges:
    paid_invoices: list[int]
    bounced_payment: int
    grown_subscription: int
    moved_contact: int


def apply_billing_changes(conn: psycopg.Connection) -> BillingChanges:
    """The demo's change batch, on a seeded database, at `CHANGED_AT`: the ten oldest open
    invoices paid, the last payment bounced (deleted, its invoice open again), the first active
    subscription's seats doubled and a contact's email changed."""
    with conn.transaction():
        # The newest payment bounces before the new ones arrive (one a load already copied);
        # new payments get new keys, never the bounced one's.
        bounced, invoice = _one(
            conn, "select payment_id, invoice_id from payments order by payment_id desc limit 1"
        )
        conn.execute("delete from payments where payment_id = %s", (bounced,))
        conn.execute(
            "update invoices set status = 'open', updated_at = %s where invoice_id = %s",
            (CHANGED_AT, invoice),
        )
        paid = [
            row[0]
            for row in conn.execute(
                "select invoice_id from invoices where status = 'open' and invoice_id <> %s "
                "order by issued_at, invoice_id limit 10",
                (invoice,),
            ).fetchall()
        ]
        conn.execute(
            "insert into payments (payment_id, invoice_id, paid_at, amount, method, updated_at) "
            "select %(last)s + row_number() over (order by invoice_id), invoice_id, %(at)s, "
            "amount, 'transfer', %(at)s from invoices where invoice_id = any(%(ids)s)",
            {"last": bounced, "at": CHANGED_AT, "ids": paid},
        )
        conn.execute(
            "update invoices set status = 'paid', updated_at = %s where invoice_id = any(%s)",
            (CHANGED_AT, paid),
        )
        (grown,) = _one(
            conn,
            "select subscription_id from subscriptions where status = 'active' "
            "order by subscription_id limit 1",
        )
        conn.execute(
            "update subscriptions set seats = seats * 2, updated_at = %s "
            "where subscription_id = %s",
            (CHANGED_AT, grown),
        )
        (moved,) = _one(conn, "select min(contact_id) from contacts")
        conn.execute(
            "update contacts set email = 'moved.' || email, updated_at = %s where contact_id = %s",
            (CHANGED_AT, moved),
        )
    return BillingChanges(paid, bounced, grown, moved)


def _one(conn: psycopg.Connection, query: str) -> tuple[Any, ...]:
    row = conn.execute(query).fetchone()
    if row is None:
        raise click.ClickException(f"the billing database is empty (`{query}`); seed it first")
    return tuple(row)


@click.command(
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Example:
  PGPASSWORD=erp-demo-password python -m demo.seed_billing --port 54321 --dbname globex_erp
""",
)
@click.option("--host", envvar="PGHOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="PGPORT", type=int, default=54321, show_default=True)
@click.option("--dbname", envvar="PGDATABASE", default="globex_erp", show_default=True)
@click.option("--user", envvar="PGUSER", default="erp", show_default=True)
def main(host: str, port: int, dbname: str, user: str) -> None:
    """Create and seed globex's CRM/billing source database (password from PGPASSWORD). Prints
    the rows per table as one JSON line on stdout."""
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s", stream=sys.stderr)
    try:
        counts = seed_billing(host=host, port=port, dbname=dbname, user=user)
    except psycopg.Error as exc:
        raise click.ClickException(
            f"{str(exc).strip()}\nCheck --host/--port/--user and PGPASSWORD."
        ) from exc
    click.echo(json.dumps(counts))


if __name__ == "__main__":
    main()
