-- Net revenue (extended price less discount) by the customer's nation and the order year.
-- A customer's nation is its current one (the history in dim_customers starts with the first
-- snapshot, after these orders were placed).
with

order_lines as (
    select * from {{ ref('fct_order_lines') }}
),

customers as (
    select * from {{ ref('dim_customers') }}
    where is_current
),

final as (
    select
        customers.region_name,
        customers.nation_id,
        customers.nation_name,
        extract(year from order_lines.order_date)::integer as order_year,
        sum(order_lines.extended_price * (1 - order_lines.discount)) as revenue,
        count(distinct order_lines.order_id) as order_count,
        count(distinct order_lines.customer_id) as customer_count,
        count(*) as line_count
    from order_lines
    inner join customers
        on order_lines.customer_id = customers.customer_id
    group by
        customers.region_name,
        customers.nation_id,
        customers.nation_name,
        extract(year from order_lines.order_date)
)

select * from final
