with

source as (
    select * from {{ source('erp', 'payments') }}
),

latest as (
    {{ latest_row_per_key('source', 'payment_id') }}
),

final as (
    select
        payment_id::integer as payment_id,
        invoice_id::integer as invoice_id,
        paid_at::timestamptz as paid_at,
        amount::numeric(12, 2) as amount,
        method::text as method,
        updated_at::timestamptz as updated_at
    from latest
)

select * from final
