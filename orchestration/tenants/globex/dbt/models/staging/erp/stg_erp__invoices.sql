with

source as (
    select * from {{ source('erp', 'invoices') }}
),

latest as (
    {{ latest_row_per_key('source', 'invoice_id') }}
),

final as (
    select
        invoice_id::integer as invoice_id,
        subscription_id::integer as subscription_id,
        account_id::integer as account_id,
        period_start::date as period_month,
        issued_at::timestamptz as issued_at,
        due_on::date as due_on,
        amount::numeric(12, 2) as amount,
        currency::text as currency,
        status::text as status,
        updated_at::timestamptz as updated_at
    from latest
)

select * from final
