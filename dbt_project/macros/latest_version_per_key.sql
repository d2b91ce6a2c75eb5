{#
    The latest version of every key in a Bronze table.

    `merge` loads keep one row per key, but `snapshot` and `append` loads keep every version, so
    staging always deduplicates: the newest source change (`updated_at`) wins, and of two copies
    of the same change the one loaded last (`_dk_loaded_at`). Returns a select over `relation`
    (a CTE name or a relation) with all its columns.
#}
{% macro latest_version_per_key(relation, key_columns) -%}
    {%- set keys = key_columns | join(', ') -%}
    select distinct on ({{ keys }}) *
    from {{ relation }}
    order by {{ keys }}, updated_at desc nulls last, _dk_loaded_at desc nulls last
{%- endmacro %}
