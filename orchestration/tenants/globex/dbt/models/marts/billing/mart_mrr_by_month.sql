with

invoices as (
    select * from {{ ref('fct_invoices') }}
),

billed as (
    select * from invoices
    where status <> 'void'
),

final as (
    select
        period_month,
        -- Fiscal years are named by the calendar year they start in.
        extract(
            year from period_month - interval '{{ var("fiscal_year_start_month") - 1 }} months'
        )::integer as fiscal_year,
        plan_code,
        count(distinct account_id) as accounts,
        count(distinct subscription_id) as subscriptions,
        sum(amount)::numeric(14, 2) as mrr,
        sum(amount_paid)::numeric(14, 2) as collected,
        sum(amount_due)::numeric(14, 2) as outstanding
    from billed
    group by period_month, plan_code
)

select * from final
