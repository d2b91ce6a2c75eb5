-- One row per live order: the header plus what its lines add up to. Orders without lines keep
-- zero counts and amounts.
--
-- Incremental: a run recomputes the orders whose header was loaded into Silver after the newest
-- `order_loaded_at` here, or any of whose lines (changed, added or deleted) after the newest
-- `lines_loaded_at` (see orders_to_rebuild). The pre-hook first moves those orders into
-- fct_orders__replaced, from which int_revenue_by_customer_year subtracts them; the model then
-- appends the live ones (`append`: no second delete).
-- Only incremental runs read stg_erp__lineitems, so dbt needs the dependency spelled out:
-- depends_on: {{ ref('stg_erp__lineitems') }}
-- `analyze` after each run (analyze_after_build): the readers right after plan with the new rows.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    post_hook="{{ analyze_after_build(['order_loaded_at', 'lines_loaded_at', 'built_at']) }}",
    pre_hook="{{ remove_rows_to_rebuild(orders_to_rebuild, ['order_id'],
        ['customer_id', 'order_date', 'line_count', 'net_revenue']) }}",
    indexes=[
        {'columns': ['order_id'], 'unique': true},
        {'columns': ['order_loaded_at']},
        {'columns': ['lines_loaded_at']},
        {'columns': ['built_at']},
    ],
) }}

with

orders as (
    select * from {{ ref('stg_erp__orders') }}
    where deleted_at is null
),

order_lines as (
    select * from {{ ref('fct_order_lines') }}
),

{% if is_incremental() %}
changed_orders as (
    {{ orders_to_rebuild() }}
),

orders_to_build as (
    select orders.*
    from orders
    inner join changed_orders
        on orders.order_id = changed_orders.order_id
),
{% else %}
orders_to_build as (
    select * from orders
),
{% endif %}

line_totals as (
    select
        order_lines.order_id,
        count(*) as line_count,
        count(*) filter (where order_lines.return_flag = 'R') as returned_line_count,
        count(*) filter (where order_lines.is_late) as late_line_count,
        sum(order_lines.quantity) as total_quantity,
        sum(order_lines.extended_price) as gross_revenue,
        sum(order_lines.net_revenue) as net_revenue,
        sum(order_lines.charge) as total_charge,
        min(order_lines.ship_date) as first_ship_date,
        max(order_lines.receipt_date) as last_receipt_date,
        max(order_lines.line_loaded_at) as lines_loaded_at
    from order_lines
    {% if is_incremental() %}
    inner join changed_orders
        on order_lines.order_id = changed_orders.order_id
    {% endif %}
    group by order_lines.order_id
),

final as (
    select
        orders_to_build.order_id,
        orders_to_build.customer_id,
        orders_to_build.order_date,
        orders_to_build.order_status,
        orders_to_build.order_priority,
        orders_to_build.clerk,
        orders_to_build.ship_priority,
        orders_to_build.total_price,
        coalesce(line_totals.line_count, 0) as line_count,
        coalesce(line_totals.returned_line_count, 0) as returned_line_count,
        coalesce(line_totals.late_line_count, 0) as late_line_count,
        coalesce(line_totals.total_quantity, 0) as total_quantity,
        coalesce(line_totals.gross_revenue, 0) as gross_revenue,
        coalesce(line_totals.net_revenue, 0) as net_revenue,
        coalesce(line_totals.total_charge, 0) as total_charge,
        line_totals.first_ship_date,
        line_totals.last_receipt_date,
        orders_to_build.updated_at,
        orders_to_build.loaded_at as order_loaded_at,
        line_totals.lines_loaded_at,
        {{ built_at() }} as built_at
    from orders_to_build
    left join line_totals
        on orders_to_build.order_id = line_totals.order_id
)

select * from final
