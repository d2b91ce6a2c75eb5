"""Apply a change batch to the TPC-H ERP source, as a day of business would.

One transaction, so the Bronze loader sees all of it or none of it:
- new orders (with their lines), copied from existing orders under new keys;
- changed orders: a new priority and comment on existing orders (their lines unchanged);
- deleted orders, with their lines (no foreign keys: the ERP deletes both, as an app would);
- changed customers: a new address.

Every touched row gets `updated_at = now()`, the cursor the incremental Bronze loads follow.
`--fraction` is the share of orders touched (new + changed + deleted); the rows are chosen by a
hash of their key and `--seed`, so a batch is reproducible. Importable: `apply_change_batch`
returns the touched keys, which the tests and the benchmark check against.

Usage:
    PGPASSWORD=... python demo/change_batch.py --fraction 0.01 --port 54321 --dbname erp
"""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import asdict, dataclass
from typing import Any

import click
import psycopg

log = logging.getLogger("change_batch")


@dataclass(frozen=True)
class ChangeBatch:
    """The keys a batch touched, sorted."""

    new_orders: list[int]
    changed_orders: list[int]
    deleted_orders: list[int]
    changed_customers: list[int]
    new_lines: int
    deleted_lines: int


def apply_change_batch(
    conn: psycopg.Connection,
    *,
    fraction: float = 0.01,
    deleted_orders: int = 1,
    customer_fraction: float = 0.01,
    seed: int = 1,
) -> ChangeBatch:
    """Change the source in one transaction; return what changed."""
    if not 0 < fraction <= 0.5:
        raise ValueError(f"fraction is {fraction}: use a share of orders in (0, 0.5]")
    with conn.transaction():
        (order_count,) = _one(conn, "select count(*) from orders")
        (customer_count,) = _one(conn, "select count(*) from customer")
        touched = max(int(order_count * fraction), deleted_orders + 2)
        new_count = (touched - deleted_orders) // 2
        changed_count = touched - deleted_orders - new_count
        # One ordering by a seeded hash of the key; consecutive slices of it are disjoint.
        picked = [
            key
            for (key,) in conn.execute(
                "select o_orderkey from orders order by hashint8(o_orderkey + %s), o_orderkey "
                "limit %s",
                (seed, touched),
            )
        ]
        templates = picked[:new_count]
        changed = picked[new_count : new_count + changed_count]
        deleted = picked[new_count + changed_count :]
        new_keys, new_lines = _copy_orders(conn, templates)
        conn.execute(
            "update orders set o_orderpriority = '1-URGENT', "
            "o_comment = 'escalated by the change batch', updated_at = now() "
            "where o_orderkey = any(%s)",
            (changed,),
        )
        deleted_lines = conn.execute(
            "delete from lineitem where l_orderkey = any(%s)", (deleted,)
        ).rowcount
        conn.execute("delete from orders where o_orderkey = any(%s)", (deleted,))
        customers = [
            key
            for (key,) in conn.execute(
                "update customer set c_address = 'moved ' || md5(c_custkey::text || %s), "
                "updated_at = now() where c_custkey in (select c_custkey from customer "
                "order by hashint4(c_custkey + %s), c_custkey limit %s) returning c_custkey",
                (str(seed), seed, max(1, int(customer_count * customer_fraction))),
            )
        ]
    batch = ChangeBatch(
        sorted(new_keys),
        sorted(changed),
        sorted(deleted),
        sorted(customers),
        new_lines,
        deleted_lines,
    )
    log.info(
        "change batch: %d new orders (%d lines), %d changed, %d deleted (%d lines), "
        "%d customers moved",
        len(batch.new_orders),
        new_lines,
        len(changed),
        len(deleted),
        deleted_lines,
        len(customers),
    )
    return batch


def _copy_orders(conn: psycopg.Connection, templates: list[int]) -> tuple[list[int], int]:
    """Insert a copy of each template order and its lines under a new key above every key."""
    (top,) = _one(conn, "select coalesce(max(o_orderkey), 0) from orders")
    conn.execute(
        "create temp table new_keys on commit drop as "
        "select template, %s::bigint + row_number() over (order by template) as new_key "
        "from unnest(%s::bigint[]) as template",
        (top, templates),
    )
    conn.execute(
        """
        insert into orders (o_orderkey, o_custkey, o_orderstatus, o_totalprice, o_orderdate,
            o_orderpriority, o_clerk, o_shippriority, o_comment, updated_at)
        select k.new_key, o.o_custkey, 'O', o.o_totalprice, current_date, o.o_orderpriority,
            o.o_clerk, o.o_shippriority, 'placed by the change batch', now()
        from orders o join new_keys k on k.template = o.o_orderkey
        """
    )
    lines = conn.execute(
        """
        insert into lineitem (l_orderkey, l_partkey, l_suppkey, l_linenumber, l_quantity,
            l_extendedprice, l_discount, l_tax, l_returnflag, l_linestatus, l_shipdate,
            l_commitdate, l_receiptdate, l_shipinstruct, l_shipmode, l_comment, updated_at)
        select k.new_key, l.l_partkey, l.l_suppkey, l.l_linenumber, l.l_quantity,
            l.l_extendedprice, l.l_discount, l.l_tax, 'N', 'O', current_date + 1,
            current_date + 30, current_date + 5, l.l_shipinstruct, l.l_shipmode,
            'placed by the change batch', now()
        from lineitem l join new_keys k on k.template = l.l_orderkey
        """
    ).rowcount
    keys = [key for (key,) in conn.execute("select new_key from new_keys order by new_key")]
    return keys, lines


def _one(conn: psycopg.Connection, query: str) -> tuple[Any, ...]:
    row = conn.execute(query).fetchone()
    assert row is not None
    return row


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--fraction",
    type=float,
    default=0.01,
    show_default=True,
    help="Share of orders touched: new, changed and deleted together.",
)
@click.option(
    "--deleted-orders",
    type=int,
    default=1,
    show_default=True,
    help="Orders deleted (with their lines).",
)
@click.option(
    "--customer-fraction",
    type=float,
    default=0.01,
    show_default=True,
    help="Share of customers whose address changes.",
)
@click.option("--seed", type=int, default=1, show_default=True, help="Which rows are picked.")
@click.option("--host", envvar="PGHOST", default="127.0.0.1", show_default=True)
@click.option("--port", envvar="PGPORT", type=int, default=5432, show_default=True)
@click.option("--dbname", envvar="PGDATABASE", default="erp", show_default=True)
@click.option("--user", envvar="PGUSER", default="erp", show_default=True)
def main(
    fraction: float,
    deleted_orders: int,
    customer_fraction: float,
    seed: int,
    host: str,
    port: int,
    dbname: str,
    user: str,
) -> None:
    """Apply a change batch to the TPC-H source (password from PGPASSWORD); print the touched
    keys' counts as one JSON line."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr
    )
    try:
        with psycopg.connect(
            host=host, port=port, dbname=dbname, user=user, autocommit=True
        ) as conn:
            batch = apply_change_batch(
                conn,
                fraction=fraction,
                deleted_orders=deleted_orders,
                customer_fraction=customer_fraction,
                seed=seed,
            )
    except (psycopg.Error, ValueError) as exc:
        raise click.ClickException(
            f"{str(exc).strip()}\nCheck --host/--port/--dbname/--user, PGPASSWORD, and that the "
            "database was seeded with demo/seed_tpch.py."
        ) from exc
    summary = {k: len(v) if isinstance(v, list) else v for k, v in asdict(batch).items()}
    click.echo(json.dumps(summary))


if __name__ == "__main__":
    main()
