"""TPC-H for the tests: a source database seeded with it, and query 1 (pricing summary) on the
source and on the Gold mart that must answer it alike."""

from __future__ import annotations

from demo.seed_tpch import seed_tpch
from tests.kit.databases import Database


def seed_tpch_into(source: Database, scale: float) -> None:
    """The TPC-H tables at `scale` in `source`, as the demo seeds its source."""
    server = source.server
    seed_tpch(
        host="127.0.0.1",
        port=server.port,
        dbname=source.name,
        user=server.user,
        password=server.password,
        scale=scale,
    )


PRICING_SUMMARY_ON_SOURCE = """
select l_returnflag, l_linestatus, sum(l_quantity), sum(l_extendedprice),
       sum(l_extendedprice * (1 - l_discount)),
       sum(l_extendedprice * (1 - l_discount) * (1 + l_tax)), count(*)
from lineitem
where l_shipdate <= date '1998-12-01' - interval '90 day'
group by 1, 2 order by 1, 2
"""
GOLD_PRICING_SUMMARY = """
select return_flag, line_status, sum_qty, sum_base_price, sum_disc_price, sum_charge, count_order
from gold.mart_pricing_summary order by 1, 2
"""
