with

source as (
    select * from {{ source('erp', 'supplier') }}
),

latest as (
    {{ latest_version_per_key('source', ['s_suppkey']) }}
),

final as (
    select
        s_suppkey::integer as supplier_id,
        s_name::text as supplier_name,
        s_address::text as address,
        s_nationkey::integer as nation_id,
        s_phone::text as phone,
        s_acctbal::numeric(15, 2) as account_balance,
        s_comment::text as comment,
        updated_at::timestamptz as updated_at,
        _dk_loaded_at::timestamptz as loaded_at
    from latest
)

select * from final
