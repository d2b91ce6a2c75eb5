{#
    The keys an incremental run of a Gold fact rebuilds, from Silver, since the newest
    `*_loaded_at` of each Silver table already in the fact (`this`): one watermark per Silver
    table, because loads of different tables can commit in any order, so a single combined
    watermark could step over a late one. Tombstoned rows are among them: the pre-hook
    (`remove_rows_to_rebuild`) removes every such key, and the model writes back the live ones.
    They read the Silver relations, not CTEs: a CTE read twice is materialized in full.
#}

{#
    Whole Silver lines, not only their keys: the fact reads them as they come, with no second
    lookup of each line by its key. The second branch leaves out the lines the first has, so
    the two never share a line and `union all` needs no deduplication.
#}
{% macro order_lines_to_rebuild() -%}
    select changed_lines.*
    from {{ ref('stg_erp__lineitems') }} as changed_lines
    where changed_lines.loaded_at > {{ watermark('line_loaded_at') }}
    union all
    select changed_orders_lines.*
    from {{ ref('stg_erp__orders') }} as changed_orders
    inner join {{ ref('stg_erp__lineitems') }} as changed_orders_lines
        on changed_orders.order_id = changed_orders_lines.order_id
    where changed_orders.loaded_at > {{ watermark('order_loaded_at') }}
        and (changed_orders_lines.loaded_at > {{ watermark('line_loaded_at') }}) is not true
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
