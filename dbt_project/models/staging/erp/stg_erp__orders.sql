-- Incremental: each run takes only the Bronze rows loaded since the newest one here
-- (`_dk_loaded_at`, which the loader also moves when it marks a delete) and replaces those
-- orders. Deleted orders stay as tombstones (`deleted_at` set) so the incremental Gold facts
-- can remove them too; readers of live orders filter `deleted_at is null`.
-- `analyze` after each run (analyze_after_build): the readers right after plan with the new rows.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook="{{ analyze_after_build(['loaded_at', 'built_at']) }}",
    unique_key='order_id',
    indexes=[
        {'columns': ['order_id'], 'unique': true},
        {'columns': ['loaded_at']},
        {'columns': ['built_at']},
    ],
) }}

with

source as (
    select * from {{ source('erp', 'orders') }}
    {% if is_incremental() %}
    where _dk_loaded_at > {{ watermark('loaded_at') }}
    {% endif %}
),

latest as (
    {{ latest_version_per_key('source', ['o_orderkey'], keep_tombstones=true) }}
),

final as (
    select
        o_orderkey::bigint as order_id,
        o_custkey::integer as customer_id,
        o_orderstatus::text as order_status,
        o_totalprice::numeric(15, 2) as total_price,
        o_orderdate::date as order_date,
        o_orderpriority::text as order_priority,
        o_clerk::text as clerk,
        o_shippriority::integer as ship_priority,
        o_comment::text as comment,
        updated_at::timestamptz as updated_at,
        _dk_deleted_at::timestamptz as deleted_at,
        _dk_loaded_at::timestamptz as loaded_at,
        {{ built_at() }} as built_at
    from latest
)

select * from final
