with

invoices as (
    select * from {{ ref('stg_erp__invoices') }}
),

subscriptions as (
    select * from {{ ref('stg_erp__subscriptions') }}
),

plans as (
    select * from {{ ref('stg_erp__plans') }}
),

payments as (
    select * from {{ ref('stg_erp__payments') }}
),

paid as (
    select
        invoice_id,
        count(*) as payments,
        sum(amount) as amount_paid,
        max(paid_at) as last_paid_at
    from payments
    group by invoice_id
),

final as (
    select
        invoices.invoice_id,
        invoices.account_id,
        invoices.subscription_id,
        subscriptions.plan_id,
        plans.plan_code,
        invoices.period_month,
        invoices.issued_at,
        invoices.due_on,
        invoices.amount,
        invoices.currency,
        invoices.status,
        coalesce(paid.payments, 0) as payments,
        coalesce(paid.amount_paid, 0)::numeric(12, 2) as amount_paid,
        case
            when invoices.status = 'void' then 0
            else invoices.amount - coalesce(paid.amount_paid, 0)
        end::numeric(12, 2) as amount_due,
        paid.last_paid_at,
        case
            when invoices.status = 'paid' then paid.last_paid_at::date - invoices.issued_at::date
        end as days_to_pay
    from invoices
    inner join subscriptions on invoices.subscription_id = subscriptions.subscription_id
    inner join plans on subscriptions.plan_id = plans.plan_id
    left join paid on invoices.invoice_id = paid.invoice_id
)

select * from final
