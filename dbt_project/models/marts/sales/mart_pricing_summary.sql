-- TPC-H Q1, the pricing summary report: what was billed, shipped and returned, by return flag
-- and line status, over the lines shipped on or before report date - delta days
-- (vars `pricing_summary_report_date`, `pricing_summary_delta_days`; TPC-H validates with
-- 1998-12-01 and 90).
--
-- Incremental from deltas: a run adds the fact's lines built since this mart's newest
-- `built_at` and subtracts the lines the fact replaced since (fct_order_lines__replaced, see
-- replaced_rows.sql), so its cost follows the change, not the 6 M lines. Sums and counts are
-- exact in numeric; the averages are computed from them as PostgreSQL's avg() does (sum /
-- count). It sums everything again when it cannot apply deltas: first build, the fact rebuilt
-- whole, or another cutoff date; a group whose last line left is deleted (post-hook).
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['return_flag', 'line_status'],
    on_schema_change='append_new_columns',
    post_hook=[
        'delete from {{ this }} where count_order = 0',
        "{{ prune_replaced(ref('fct_order_lines')) }}",
    ],
) }}

{%- set cutoff -%}
    date '{{ var("pricing_summary_report_date") }}' - interval '{{ var("pricing_summary_delta_days") }} day'
{%- endset -%}
{%- set keys = ['return_flag', 'line_status'] -%}
{%- set measures = ['sum_qty', 'sum_base_price', 'sum_disc_price', 'sum_charge', 'sum_discount',
    'count_order'] -%}
{%- set from_deltas = deltas_apply(ref('fct_order_lines')) -%}
{%- if from_deltas -%}
    {%- set stored_cutoff -%}
        select coalesce(bool_and(ship_date_cutoff = ({{ cutoff }})::date), true) from {{ this }}
    {%- endset -%}
    {%- set from_deltas = run_query(stored_cutoff).columns[0].values()[0] -%}
{%- endif %}

with

changes as (
    {%- if from_deltas %}
    -- +1 for each line built since this mart, -1 for each line it held that the fact replaced.
    select return_flag, line_status, quantity, extended_price, discount, tax, 1 as sign
    from {{ ref('fct_order_lines') }}
    where built_at > {{ watermark('built_at') }}
        and ship_date <= {{ cutoff }}
    union all
    select return_flag, line_status, quantity, extended_price, discount, tax, -1 as sign
    from {{ replaced_relation(ref('fct_order_lines')) }}
    where replaced_at > {{ watermark('built_at') }}
        and built_at <= {{ watermark('built_at') }}
        and ship_date <= {{ cutoff }}
    {%- else %}
    -- Every line, once.
    select return_flag, line_status, quantity, extended_price, discount, tax, 1 as sign
    from {{ ref('fct_order_lines') }}
    where ship_date <= {{ cutoff }}
    {%- endif %}
),

summed as (
    select
        return_flag,
        line_status,
        sum(sign * quantity) as sum_qty,
        sum(sign * extended_price) as sum_base_price,
        sum(sign * extended_price * (1 - discount)) as sum_disc_price,
        sum(sign * extended_price * (1 - discount) * (1 + tax)) as sum_charge,
        sum(sign * discount) as sum_discount,
        sum(sign) as count_order
    from changes
    group by return_flag, line_status
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
        return_flag,
        line_status,
        sum_qty,
        sum_base_price,
        sum_disc_price,
        sum_charge,
        sum_qty / nullif(count_order, 0) as avg_qty,
        sum_base_price / nullif(count_order, 0) as avg_price,
        sum_discount / nullif(count_order, 0) as avg_disc,
        count_order,
        sum_discount,
        ({{ cutoff }})::date as ship_date_cutoff,
        {{ built_at() }} as built_at
    from totals
)

select * from final
