-- One row per order line with its order's header fields and the line's money.
--
-- Incremental: each run merges (delete + insert on the key) the lines whose line or order
-- changed since the newest change already here. `updated_at` is the later of the two, so a
-- change to an order's header re-emits its lines too.
{{ config(
    materialized='incremental',
    unique_key=['order_id', 'line_number'],
    on_schema_change='append_new_columns',
    indexes=[
        {'columns': ['order_id', 'line_number'], 'unique': true},
        {'columns': ['updated_at']},
    ],
) }}

with

lineitems as (
    select * from {{ ref('stg_erp__lineitems') }}
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
        greatest(lineitems.updated_at, orders.updated_at) as updated_at
    from lineitems
    inner join orders
        on lineitems.order_id = orders.order_id
),

changed as (
    select * from order_lines
    {% if is_incremental() %}
    where updated_at > (
        select coalesce(max(updated_at), '-infinity'::timestamptz) from {{ this }}
    )
    {% endif %}
),

final as (
    select * from changed
)

select * from final
