{#
    markets's schemas carry its prefix: the custom schemas `silver`, `snapshots` and `gold` become
    `<prefix>silver`, … with the prefix the dbt runner sets (DK_TENANT_SCHEMA_PREFIX, `markets_`),
    so markets shares the warehouse database with other tenants without meeting their schemas.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ env_var('DK_TENANT_SCHEMA_PREFIX', '') | trim }}{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
