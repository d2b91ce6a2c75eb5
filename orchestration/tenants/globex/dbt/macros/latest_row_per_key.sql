{#
    The current row of every key of a Bronze table loaded incrementally: `merge` keeps one row
    per key, `append` every version, so the newest change (`updated_at`) wins, and of two copies
    of one change the one loaded last. Rows stamped `_dk_deleted_at` (their key left the source,
    `deletes: mark`) are dropped.
#}
{% macro latest_row_per_key(relation, key) -%}
    select distinct on ({{ key }}) *
    from {{ relation }}
    where _dk_deleted_at is null
    order by {{ key }}, updated_at desc nulls last, _dk_loaded_at desc
{%- endmacro %}
