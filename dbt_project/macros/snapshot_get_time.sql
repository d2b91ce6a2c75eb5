{#
    dbt-postgres stamps snapshots with `now()::timestamp without time zone`, but our `updated_at`
    columns, and so the snapshots' dbt_valid_from / dbt_valid_to, are timestamptz: dbt warns
    about the mismatch on every snapshot, and a hard delete would be closed with a session-local
    wall-clock time. Keep the time zone: the snapshot time is `now()`, a timestamptz.
#}
{% macro postgres__snapshot_get_time() -%}
    {{ current_timestamp() }}
{%- endmacro %}
