{#
    The `built_at` value of the rows a model writes in this dbt invocation: its start time.
    One place for it, because `get_where_subquery` (`--test-scope changed`) matches on the
    exact same value.
#}
{% macro built_at() -%}
    '{{ run_started_at.isoformat() }}'::timestamptz
{%- endmacro %}
