{#
    Fails for every combination of `combination_of_columns` that occurs more than once: the
    uniqueness test for composite keys (dbt's `unique` takes one column; no packages here).
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

with

validation as (
    select
        {{ combination_of_columns | join(', ') }},
        count(*) as occurrences
    from {{ model }}
    group by {{ combination_of_columns | join(', ') }}
    having count(*) > 1
)

select * from validation

{% endtest %}
