{#
    Pre-hook of the incremental fct_order_lines: delete the lines that left the source since the
    last run, that is whose line or order became a Silver tombstone (`deleted_at`) after the
    newest `line_loaded_at` / `order_loaded_at` already in the fact. Runs in the model's
    transaction, before the insert; a full build needs nothing (it filters tombstones out).
#}
{% macro delete_gone_order_lines() -%}
    {%- if is_incremental() %}
    with gone as (
        select lineitems.order_id, lineitems.line_number
        from {{ ref('stg_erp__lineitems') }} as lineitems
        where lineitems.deleted_at is not null
            and lineitems.loaded_at > {{ watermark('line_loaded_at') }}
        union
        select lineitems.order_id, lineitems.line_number
        from {{ ref('stg_erp__orders') }} as orders
        inner join {{ ref('stg_erp__lineitems') }} as lineitems
            on orders.order_id = lineitems.order_id
        where orders.deleted_at is not null
            and orders.loaded_at > {{ watermark('order_loaded_at') }}
    )

    delete from {{ this }} as fact
    using gone
    where fact.order_id = gone.order_id
        and fact.line_number = gone.line_number
    {%- endif %}
{%- endmacro %}
