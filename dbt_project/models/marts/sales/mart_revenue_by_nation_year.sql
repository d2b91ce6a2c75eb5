-- Net revenue (extended price less discount) by the customer's nation and the order year.
-- A customer's nation is its current one (the history in dim_customers starts with the first
-- snapshot, after these orders were placed). Sums int_revenue_by_customer_year, which keeps
-- fct_orders summed per customer and year from deltas: one row per ordering customer and year,
-- so the customer count is a row count.
with

customer_years as (
    select * from {{ ref('int_revenue_by_customer_year') }}
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
        customer_years.order_year,
        sum(customer_years.revenue) as revenue,
        sum(customer_years.order_count)::bigint as order_count,
        count(*) as customer_count,
        sum(customer_years.line_count)::bigint as line_count
    from customer_years
    inner join customers
        on customer_years.customer_id = customers.customer_id
    group by
        customers.region_name,
        customers.nation_id,
        customers.nation_name,
        customer_years.order_year
)

select * from final
