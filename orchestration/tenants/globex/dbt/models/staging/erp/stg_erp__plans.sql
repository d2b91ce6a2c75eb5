with

source as (
    select * from {{ source('erp', 'plans') }}
),

final as (
    select
        plan_id::integer as plan_id,
        plan_code::text as plan_code,
        plan_name::text as plan_name,
        monthly_price::numeric(10, 2) as monthly_price,
        currency::text as currency,
        updated_at::timestamptz as updated_at
    from source
)

select * from final
