{#
    The latest version of every key in a Bronze table.

    `merge` loads keep one row per key, but `snapshot` and `append` loads keep every version, so
    staging always deduplicates: the newest source change (`updated_at`) wins, and of two copies
    of the same change the one loaded last (`_dk_loaded_at`). A Bronze row stamped
    `_dk_deleted_at` (its key left the source, `deletes: mark`) is a tombstone: its key is
    dropped, unless `keep_tombstones` (incremental models need to see deletes to apply them).

    Tombstones only exist in `merge` tables, which hold one row per key, so dropping them before
    deduplicating is the same as after; before, the planner estimates the filter from the Bronze
    column's statistics (after `distinct on` it would guess 0.5% of the rows and plan nested
    loops over whatever joins the model). Returns a select over `relation` (a CTE name or a
    relation) with all its columns.
#}
{% macro latest_version_per_key(relation, key_columns, keep_tombstones=false) -%}
    {%- set keys = key_columns | join(', ') -%}
    select distinct on ({{ keys }}) *
    from {{ relation }}
    {%- if not keep_tombstones %}
    where _dk_deleted_at is null
    {%- endif %}
    order by {{ keys }}, updated_at desc nulls last, _dk_loaded_at desc nulls last
{%- endmacro %}
