-- A table rather than a view: Gold reads it several times (facts, dates, tests), and the
-- deduplication sort over every order should run once per build, not once per reader.
{{ config(materialized='table', indexes=[{'columns': ['order_id'], 'unique': true}]) }}

with

source as (
    select * from {{ source('erp', 'orders') }}
),

latest as (
    {{ latest_version_per_key('source', ['o_orderkey']) }}
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
        _dk_loaded_at::timestamptz as loaded_at
    from latest
)

select * from final
