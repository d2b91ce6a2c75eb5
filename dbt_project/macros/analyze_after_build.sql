{#
    Post-hook of the big incremental models: refresh the planner's statistics, so the readers
    right after (tests, other models, the next run's filters) plan with the new rows'
    `loaded_at` and `built_at` instead of estimates from before, which would make them scan.
    A full build analyzes every column; an incremental one only `columns` (the watermarks and
    `built_at`): its change is a sliver of the rest, which autovacuum's own analyze keeps up.
#}
{% macro analyze_after_build(columns) -%}
    analyze {{ this }}{% if is_incremental() %} ({{ columns | join(', ') }}){% endif %}
{%- endmacro %}
