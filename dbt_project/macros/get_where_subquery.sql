{#
    What a data test reads from the model it tests. dbt's own version applies the test's
    `where` config; this one also narrows tests to the rows the current build wrote when the
    dbt runner's `--test-scope changed` is on (DK_TEST_SCOPE) and the tested model declares a
    `built_at` column in its properties (the big incremental models: staging orders and lines,
    the two facts). The declaration is read from the graph, not the database: asking the
    catalog for the model's columns cost each test a query, about as long as the test's own.

    Such a run checks the 1% of rows it rewrote instead of all of them, found through an index
    on `built_at` rather than a scan of the table. Keys stay exact: those models enforce their
    keys with unique indexes, so rows outside the scope cannot collide with rows inside it. What
    a scoped run does not notice is an older row whose parent row (in a `relationships` test)
    disappeared since it was written; run a full-scope build or `test` to check that, for example
    nightly. `built_at` is the invocation's start, so the scope only
    makes sense in the same invocation that built the models (a `build`).
#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- set conditions = [where] if where else [] -%}
    {%- if env_var('DK_TEST_SCOPE', 'all') == 'changed' and execute -%}
        {%- set tested = graph.nodes.get(model.attached_node) if model.attached_node else none -%}
        {%- if tested is not none and 'built_at' in tested.columns -%}
            {%- do conditions.append("built_at = " ~ built_at()) -%}
        {%- endif -%}
    {%- endif -%}
    {%- if conditions -%}
        {%- do return("(select * from " ~ relation ~ " where " ~ conditions | join(" and ") ~ ") dbt_subquery") -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
