-- Net revenue, orders and lines per customer and order year, over orders with at least one
-- line: what mart_revenue_by_nation_year sums by the customer's current nation. Kept here
-- rather than summed from fct_orders each time because a customer's nation can change, which
-- moves all their orders at once: the mart re-sums these ~10× fewer rows instead.
--
-- Incremental from deltas, as mart_pricing_summary: it adds the orders built since its newest
-- `built_at` and subtracts the orders fct_orders replaced since (fct_orders__replaced); it sums
-- everything again on its first build or after fct_orders was rebuilt whole. A customer-year
-- whose last order left is deleted (post-hook; only this build writes such rows). `built_at` is
-- indexed: each run reads its newest value several times.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['customer_id', 'order_year'],
    on_schema_change='append_new_columns',
    post_hook=[
        'delete from {{ this }} where order_count = 0 and built_at = {{ built_at() }}',
        "{{ prune_replaced(ref('fct_orders')) }}",
    ],
    indexes=[
        {'columns': ['customer_id', 'order_year'], 'unique': true},
        {'columns': ['built_at']},
    ],
) }}

{%- set keys = ['customer_id', 'order_year'] -%}
{%- set measures = ['revenue', 'order_count', 'line_count'] -%}
{%- set from_deltas = deltas_apply(ref('fct_orders')) %}

with

changes as (
    {%- if from_deltas %}
    -- +1 for each order built since this model, -1 for each order it held that the fact replaced.
    select customer_id, order_date, line_count, net_revenue, 1 as sign
    from {{ ref('fct_orders') }}
    where built_at > {{ watermark('built_at') }}
        and line_count > 0
    union all
    select customer_id, order_date, line_count, net_revenue, -1 as sign
    from {{ replaced_relation(ref('fct_orders')) }}
    where replaced_at > {{ watermark('built_at') }}
        and built_at <= {{ watermark('built_at') }}
        and line_count > 0
    {%- else %}
    -- Every order, once.
    select customer_id, order_date, line_count, net_revenue, 1 as sign
    from {{ ref('fct_orders') }}
    where line_count > 0
    {%- endif %}
),

summed as (
    select
        customer_id,
        extract(year from order_date)::integer as order_year,
        sum(sign * net_revenue) as revenue,
        sum(sign) as order_count,
        sum(sign * line_count) as line_count
    from changes
    group by customer_id, extract(year from order_date)
),

totals as (
    {%- if from_deltas %}
    {{ add_delta_to_previous('summed', keys, measures) }}
    {%- else %}
    {{ with_emptied_groups('summed', keys, measures) }}
    {%- endif %}
),

final as (
    select
        customer_id,
        order_year,
        revenue,
        order_count,
        line_count,
        {{ built_at() }} as built_at
    from totals
)

select * from final
