with

source as (
    select * from {{ source('erp', 'accounts') }}
),

-- Snapshot loads: the latest full copy is the source as it is now (an account gone from the
-- source is simply not in it).
latest_copy as (
    select * from source
    where _dk_loaded_at = (select max(_dk_loaded_at) from source)
),

final as (
    select
        account_id::integer as account_id,
        account_name::text as account_name,
        industry::text as industry,
        country::text as country,
        created_at::timestamptz as created_at,
        updated_at::timestamptz as updated_at,
        _dk_loaded_at::timestamptz as loaded_at
    from latest_copy
)

select * from final
