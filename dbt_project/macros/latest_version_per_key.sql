{#
    The latest version of every key in a Bronze table.

    `merge` loads keep one row per key, but `snapshot` and `append` loads keep every version, so
    staging always deduplicates: the newest source change (`updated_at`) wins, and of two copies
    of the same change the one loaded last (`_dk_loaded_at`). A Bronze row stamped
    `_dk_deleted_at` (its key left the source, `deletes: mark`) is a tombstone: its key is
    dropped, unless `keep_tombstones` (incremental models need to see deletes to apply them).
    Returns a select over `relation` (a CTE name or a relation) with all its columns.
#}
{% macro latest_version_per_key(relation, key_columns, keep_tombstones=false) -%}
    {%- set keys = key_columns | join(', ') -%}
    {%- if not keep_tombstones %}
    select * from (
    {%- endif %}
    select distinct on ({{ keys }}) *
    from {{ relation }}
    order by {{ keys }}, updated_at desc nulls last, _dk_loaded_at desc nulls last
    {%- if not keep_tombstones %}
    ) as latest_versions
    where _dk_deleted_at is null
    {%- endif %}
{%- endmacro %}
