{#
    Per-tenant schema names: a model, snapshot or seed with a custom schema `silver`, `gold` or
    `snapshots` lands in `<prefix>silver`, `<prefix>gold`, `<prefix>snapshots`, where the prefix is
    DK_TENANT_SCHEMA_PREFIX: empty when each tenant has its own warehouse, `acme_` when tenants
    share one database. Anything without a custom schema uses the target schema, which
    profiles.yml already sets to `<prefix>silver`.
#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- set prefix = env_var('DK_TENANT_SCHEMA_PREFIX', '') | trim -%}
    {%- if not modules.re.match('^([a-z][a-z0-9_]*)?$', prefix) -%}
        {{ exceptions.raise_compiler_error(
            "DK_TENANT_SCHEMA_PREFIX is `" ~ prefix ~ "`: use lower-case letters, digits and "
            ~ "underscores, starting with a letter (for example `acme_`), or leave it empty."
        ) }}
    {%- endif -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ prefix }}{{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
