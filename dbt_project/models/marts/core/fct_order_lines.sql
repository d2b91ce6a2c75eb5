-- One row per live order line with its order's header fields and the line's money.
--
-- Incremental: a run rebuilds the lines whose line was loaded into Silver after the newest
-- `line_loaded_at` here, or whose order after the newest `order_loaded_at` (index lookups, not a
-- scan of every line; see order_lines_to_rebuild). The pre-hook first moves those lines into
-- fct_order_lines__replaced, from which mart_pricing_summary subtracts them; the model then
-- appends the live ones (`append`: no second delete).
-- `analyze` after each run (analyze_after_build): the readers right after plan with the new rows.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    on_schema_change='append_new_columns',
    post_hook="{{ analyze_after_build(['line_loaded_at', 'order_loaded_at', 'built_at']) }}",
    pre_hook="{{ remove_rows_to_rebuild(order_lines_to_rebuild, ['order_id', 'line_number'],
        ['ship_date', 'return_flag', 'line_status', 'quantity', 'extended_price', 'discount', 'tax']) }}",
    indexes=[
        {'columns': ['order_id', 'line_number'], 'unique': true},
        {'columns': ['line_loaded_at']},
        {'columns': ['order_loaded_at']},
        {'columns': ['built_at']},
    ],
) }}

with

lineitems as (
    {% if is_incremental() %}
    {{ order_lines_to_rebuild() }}
    {% else %}
    select * from {{ ref('stg_erp__lineitems') }}
    {% endif %}
),

orders as (
    select * from {{ ref('stg_erp__orders') }}
),

order_lines as (
    select
        lineitems.order_id,
        lineitems.line_number,
        orders.customer_id,
        lineitems.part_id,
        lineitems.supplier_id,
        orders.order_date,
        orders.order_status,
        lineitems.ship_date,
        lineitems.commit_date,
        lineitems.receipt_date,
        lineitems.return_flag,
        lineitems.line_status,
        lineitems.ship_mode,
        lineitems.ship_instructions,
        lineitems.quantity,
        lineitems.extended_price,
        lineitems.discount,
        lineitems.tax,
        lineitems.extended_price * (1 - lineitems.discount) as net_revenue,
        lineitems.extended_price * (1 - lineitems.discount) * (1 + lineitems.tax) as charge,
        lineitems.receipt_date > lineitems.commit_date as is_late,
        greatest(lineitems.updated_at, orders.updated_at) as updated_at,
        lineitems.loaded_at as line_loaded_at,
        orders.loaded_at as order_loaded_at,
        {{ built_at() }} as built_at
    from lineitems
    inner join orders
        on lineitems.order_id = orders.order_id
    where lineitems.deleted_at is null
        and orders.deleted_at is null
),

final as (
    select * from order_lines
)

select * from final
