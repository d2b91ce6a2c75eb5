with

source as (
    select * from {{ source('erp', 'subscriptions') }}
),

latest as (
    {{ latest_row_per_key('source', 'subscription_id') }}
),

final as (
    select
        subscription_id::integer as subscription_id,
        account_id::integer as account_id,
        plan_id::integer as plan_id,
        seats::integer as seats,
        status::text as status,
        started_on::date as started_on,
        ended_on::date as ended_on,
        updated_at::timestamptz as updated_at
    from latest
)

select * from final
