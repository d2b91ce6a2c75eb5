{#
    The keys an incremental run of a Gold fact rebuilds, from Silver, since the newest
    `*_loaded_at` of each Silver table already in the fact (`this`): one watermark per Silver
    table, because loads of different tables can commit in any order, so a single combined
    watermark could step over a late one. Tombstoned rows are among them: the pre-hook
    (`remove_rows_to_rebuild`) removes every such key, and the model writes back the live ones.
    They read the Silver relations, not CTEs: a CTE read twice is materialized in full.
#}

{% macro order_lines_to_rebuild() -%}
    select order_id, line_number
    from {{ ref('stg_erp__lineitems') }}
    where loaded_at > {{ watermark('line_loaded_at') }}
    union
    select changed_orders_lines.order_id, changed_orders_lines.line_number
    from {{ ref('stg_erp__orders') }} as changed_orders
    inner join {{ ref('stg_erp__lineitems') }} as changed_orders_lines
        on changed_orders.order_id = changed_orders_lines.order_id
    where changed_orders.loaded_at > {{ watermark('order_loaded_at') }}
{%- endmacro %}


{% macro orders_to_rebuild() -%}
    select order_id
    from {{ ref('stg_erp__orders') }}
    where loaded_at > {{ watermark('order_loaded_at') }}
    union
    select order_id
    from {{ ref('stg_erp__lineitems') }}
    where loaded_at > {{ watermark('lines_loaded_at') }}
{%- endmacro %}
