-- One row per order: the header plus what its lines add up to. Orders without lines keep
-- zero counts and amounts.
with

orders as (
    select * from {{ ref('stg_erp__orders') }}
),

order_lines as (
    select * from {{ ref('fct_order_lines') }}
),

line_totals as (
    select
        order_id,
        count(*) as line_count,
        count(*) filter (where return_flag = 'R') as returned_line_count,
        count(*) filter (where is_late) as late_line_count,
        sum(quantity) as total_quantity,
        sum(extended_price) as gross_revenue,
        sum(net_revenue) as net_revenue,
        sum(charge) as total_charge,
        min(ship_date) as first_ship_date,
        max(receipt_date) as last_receipt_date
    from order_lines
    group by order_id
),

final as (
    select
        orders.order_id,
        orders.customer_id,
        orders.order_date,
        orders.order_status,
        orders.order_priority,
        orders.clerk,
        orders.ship_priority,
        orders.total_price,
        coalesce(line_totals.line_count, 0) as line_count,
        coalesce(line_totals.returned_line_count, 0) as returned_line_count,
        coalesce(line_totals.late_line_count, 0) as late_line_count,
        coalesce(line_totals.total_quantity, 0) as total_quantity,
        coalesce(line_totals.gross_revenue, 0) as gross_revenue,
        coalesce(line_totals.net_revenue, 0) as net_revenue,
        coalesce(line_totals.total_charge, 0) as total_charge,
        line_totals.first_ship_date,
        line_totals.last_receipt_date,
        orders.updated_at
    from orders
    left join line_totals
        on orders.order_id = line_totals.order_id
)

select * from final
