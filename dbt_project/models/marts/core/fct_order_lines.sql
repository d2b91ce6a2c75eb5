-- One row per live order line with its order's header fields and the line's money.
--
-- Incremental: a run rebuilds the lines whose line was loaded into Silver after the newest
-- `line_loaded_at` here, or whose order after the newest `order_loaded_at` (index lookups, not a
-- scan of every line), and first deletes the lines whose line or order became a tombstone since
-- (see delete_gone_order_lines). One watermark per Silver table: loads of different tables can
-- commit in any order, so a single combined watermark could step over a late one.
-- `analyze` after each run: the readers right after (tests, other models) plan with the new
-- rows' `loaded_at` and `built_at` in the statistics, not with estimates from before.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['order_id', 'line_number'],
    on_schema_change='append_new_columns',
    post_hook='analyze {{ this }}',
    pre_hook="{{ delete_gone_order_lines() }}",
    indexes=[
        {'columns': ['order_id', 'line_number'], 'unique': true},
        {'columns': ['line_loaded_at']},
        {'columns': ['order_loaded_at']},
        {'columns': ['built_at']},
    ],
) }}

with

lineitems as (
    select * from {{ ref('stg_erp__lineitems') }}
),

orders as (
    select * from {{ ref('stg_erp__orders') }}
),

{% if is_incremental() %}
-- Reads the relations, not the CTEs above: a CTE read twice is materialized in full.
changed_lines as (
    select order_id, line_number
    from {{ ref('stg_erp__lineitems') }}
    where loaded_at > {{ watermark('line_loaded_at') }}
    union
    select changed_orders_lines.order_id, changed_orders_lines.line_number
    from {{ ref('stg_erp__orders') }} as changed_orders
    inner join {{ ref('stg_erp__lineitems') }} as changed_orders_lines
        on changed_orders.order_id = changed_orders_lines.order_id
    where changed_orders.loaded_at > {{ watermark('order_loaded_at') }}
),
{% endif %}

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
    {% if is_incremental() %}
    inner join changed_lines
        on lineitems.order_id = changed_lines.order_id
        and lineitems.line_number = changed_lines.line_number
    {% endif %}
    where lineitems.deleted_at is null
        and orders.deleted_at is null
),

final as (
    select * from order_lines
)

select * from final
