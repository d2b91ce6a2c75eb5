{#
    Per-tenant schema names: a model, snapshot or seed with a custom schema `silver`, `gold` or
    `snapshots` lands in `<prefix>silver`, `<prefix>gold`, `<prefix>snapshots`, where the prefix is
    DK_TENANT_SCHEMA_PREFIX: empty when each tenant has its own warehouse, `acme_` when tenants
    share one database. Anything without a custom schema uses the target schema, which
    profiles.yml already sets to `<prefix>silver`. The dbt runner sets the variable from its
    validated config (the runner contract's SCHEMA_PREFIX_PATTERN), so it is checked there, once.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ env_var('DK_TENANT_SCHEMA_PREFIX', '') | trim }}{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
