-- Current parts: the parts snapshot's open versions, with the time each version took effect.
with

part_versions as (
    select * from {{ ref('snap_erp__parts') }}
),

current_parts as (
    select * from part_versions
    where dbt_valid_to is null
),

final as (
    select
        part_id,
        part_name,
        manufacturer,
        brand,
        part_type,
        size,
        container,
        retail_price,
        dbt_valid_from as valid_from
    from current_parts
)

select * from final
