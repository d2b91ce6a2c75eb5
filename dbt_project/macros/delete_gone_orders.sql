{#
    Pre-hook of the incremental fct_orders: delete the orders that became Silver tombstones
    (`deleted_at`) after the newest `order_loaded_at` already in the fact.
#}
{% macro delete_gone_orders() -%}
    {%- if is_incremental() %}
    delete from {{ this }} as fact
    using {{ ref('stg_erp__orders') }} as orders
    where fact.order_id = orders.order_id
        and orders.deleted_at is not null
        and orders.loaded_at > {{ watermark('order_loaded_at') }}
    {%- endif %}
{%- endmacro %}
