-- Gold bills exactly what Silver invoices and collects exactly what Silver's payments paid: the
-- totals of fct_invoices and mart_mrr_by_month equal Silver's, to the cent. A row is a total
-- that differs.
with

silver_invoices as (
    select coalesce(sum(amount), 0) as billed
    from {{ ref('stg_erp__invoices') }}
    where status <> 'void'
),

silver_payments as (
    select coalesce(sum(amount), 0) as collected
    from {{ ref('stg_erp__payments') }}
),

fact as (
    select
        coalesce(sum(amount) filter (where status <> 'void'), 0) as billed,
        coalesce(sum(amount_paid), 0) as collected
    from {{ ref('fct_invoices') }}
),

mart as (
    select coalesce(sum(mrr), 0) as billed
    from {{ ref('mart_mrr_by_month') }}
),

totals as (
    select 'fct_invoices billed' as total, fact.billed as gold, silver_invoices.billed as silver
    from fact cross join silver_invoices
    union all
    select 'fct_invoices collected', fact.collected, silver_payments.collected
    from fact cross join silver_payments
    union all
    select 'mart_mrr_by_month billed', mart.billed, silver_invoices.billed
    from mart cross join silver_invoices
)

select * from totals
where gold <> silver
