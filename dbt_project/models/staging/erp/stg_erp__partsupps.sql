with

source as (
    select * from {{ source('erp', 'partsupp') }}
),

latest as (
    {{ latest_version_per_key('source', ['ps_partkey', 'ps_suppkey']) }}
),

final as (
    select
        ps_partkey::integer as part_id,
        ps_suppkey::integer as supplier_id,
        ps_availqty::integer as available_quantity,
        ps_supplycost::numeric(15, 2) as supply_cost,
        ps_comment::text as comment,
        updated_at::timestamptz as updated_at,
        _dk_loaded_at::timestamptz as loaded_at
    from latest
)

select * from final
