-- Incremental like stg_erp__orders: only the Bronze rows loaded since the newest one here
-- move, and deleted lines stay as tombstones (`deleted_at` set) for the Gold facts.
-- `analyze` after each run (analyze_after_build): the readers right after plan with the new rows.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    on_schema_change='append_new_columns',
    post_hook="{{ analyze_after_build(['loaded_at', 'built_at']) }}",
    unique_key=['order_id', 'line_number'],
    indexes=[
        {'columns': ['order_id', 'line_number'], 'unique': true},
        {'columns': ['loaded_at']},
        {'columns': ['built_at']},
    ],
) }}

with

source as (
    select * from {{ source('erp', 'lineitem') }}
    {% if is_incremental() %}
    where _dk_loaded_at > {{ watermark('loaded_at') }}
    {% endif %}
),

latest as (
    {{ latest_version_per_key('source', ['l_orderkey', 'l_linenumber'], keep_tombstones=true) }}
),

final as (
    select
        l_orderkey::bigint as order_id,
        l_linenumber::integer as line_number,
        l_partkey::integer as part_id,
        l_suppkey::integer as supplier_id,
        l_quantity::numeric(15, 2) as quantity,
        l_extendedprice::numeric(15, 2) as extended_price,
        l_discount::numeric(15, 2) as discount,
        l_tax::numeric(15, 2) as tax,
        l_returnflag::text as return_flag,
        l_linestatus::text as line_status,
        l_shipdate::date as ship_date,
        l_commitdate::date as commit_date,
        l_receiptdate::date as receipt_date,
        l_shipinstruct::text as ship_instructions,
        l_shipmode::text as ship_mode,
        l_comment::text as comment,
        updated_at::timestamptz as updated_at,
        _dk_deleted_at::timestamptz as deleted_at,
        _dk_loaded_at::timestamptz as loaded_at,
        {{ built_at() }} as built_at
    from latest
)

select * from final
