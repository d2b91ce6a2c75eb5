with

source as (
    select * from {{ source('erp', 'customer') }}
),

latest as (
    {{ latest_version_per_key('source', ['c_custkey']) }}
),

final as (
    select
        c_custkey::integer as customer_id,
        c_name::text as customer_name,
        c_address::text as address,
        c_nationkey::integer as nation_id,
        c_phone::text as phone,
        c_acctbal::numeric(15, 2) as account_balance,
        c_mktsegment::text as market_segment,
        c_comment::text as comment,
        updated_at::timestamptz as updated_at,
        _dk_loaded_at::timestamptz as loaded_at
    from latest
)

select * from final
