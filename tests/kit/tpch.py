"""TPC-H query 1 (pricing summary), on the source and on the Gold mart that must answer it alike."""

from __future__ import annotations

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
