{#
    The newest value of `column` in the model being built ({{ this }}), for the filters of an
    incremental run; '-infinity' when the model is empty.

    At run time it is read with a query before the model's SQL runs and inlined as a literal:
    the planner then sees from the statistics how few rows are newer and uses the `loaded_at`
    indexes, while a subquery's value is unknown at planning time and makes it plan for a third
    of the table, that is full scans and sorts. Unit tests (their `this` is a fixture, not a
    table) and parsing get the equivalent subquery.
#}
{% macro watermark(column) -%}
    {%- if execute and model.resource_type != 'unit_test' -%}
        {%- set query -%}
            select coalesce(max({{ column }}), '-infinity')::text from {{ this }}
        {%- endset -%}
        '{{ run_query(query).columns[0].values()[0] }}'::timestamptz
    {%- else -%}
        (select coalesce(max({{ column }}), '-infinity'::timestamptz) from {{ this }})
    {%- endif -%}
{%- endmacro %}
