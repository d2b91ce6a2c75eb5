with

source as (
    select * from {{ source('erp', 'contacts') }}
),

latest as (
    {{ latest_row_per_key('source', 'contact_id') }}
),

final as (
    select
        contact_id::integer as contact_id,
        account_id::integer as account_id,
        full_name::text as full_name,
        lower(email)::text as email,
        job_title::text as job_title,
        is_primary::boolean as is_primary,
        updated_at::timestamptz as updated_at
    from latest
)

select * from final
