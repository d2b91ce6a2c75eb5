with

source as (
    select * from {{ source('erp', 'nation') }}
),

latest as (
    {{ latest_version_per_key('source', ['n_nationkey']) }}
),

final as (
    select
        n_nationkey::integer as nation_id,
        n_name::text as nation_name,
        n_regionkey::integer as region_id,
        n_comment::text as comment,
        updated_at::timestamptz as updated_at,
        _dk_loaded_at::timestamptz as loaded_at
    from latest
)

select * from final
