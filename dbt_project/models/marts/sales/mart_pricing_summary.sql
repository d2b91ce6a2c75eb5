-- TPC-H Q1, the pricing summary report: what was billed, shipped and returned, by return flag
-- and line status, over the lines shipped on or before report date - delta days
-- (vars `pricing_summary_report_date`, `pricing_summary_delta_days`; TPC-H validates with
-- 1998-12-01 and 90).
with

order_lines as (
    select * from {{ ref('fct_order_lines') }}
),

shipped as (
    select * from order_lines
    where ship_date <= date '{{ var("pricing_summary_report_date") }}'
        - interval '{{ var("pricing_summary_delta_days") }} day'
),

final as (
    select
        return_flag,
        line_status,
        sum(quantity) as sum_qty,
        sum(extended_price) as sum_base_price,
        sum(extended_price * (1 - discount)) as sum_disc_price,
        sum(extended_price * (1 - discount) * (1 + tax)) as sum_charge,
        avg(quantity) as avg_qty,
        avg(extended_price) as avg_price,
        avg(discount) as avg_disc,
        count(*) as count_order
    from shipped
    group by return_flag, line_status
)

select * from final
