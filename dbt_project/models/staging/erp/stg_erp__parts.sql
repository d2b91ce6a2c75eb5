with

source as (
    select * from {{ source('erp', 'part') }}
),

latest as (
    {{ latest_version_per_key('source', ['p_partkey']) }}
),

final as (
    select
        p_partkey::integer as part_id,
        p_name::text as part_name,
        p_mfgr::text as manufacturer,
        p_brand::text as brand,
        p_type::text as part_type,
        p_size::integer as size,
        p_container::text as container,
        p_retailprice::numeric(15, 2) as retail_price,
        p_comment::text as comment,
        updated_at::timestamptz as updated_at,
        _dk_loaded_at::timestamptz as loaded_at
    from latest
)

select * from final
