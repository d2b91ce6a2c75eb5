with

source as (
    select * from {{ source('erp', 'region') }}
),

latest as (
    {{ latest_version_per_key('source', ['r_regionkey']) }}
),

final as (
    select
        r_regionkey::integer as region_id,
        r_name::text as region_name,
        r_comment::text as comment,
        updated_at::timestamptz as updated_at,
        _dk_loaded_at::timestamptz as loaded_at
    from latest
)

select * from final
