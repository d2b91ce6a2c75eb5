{#
    Marts maintained from deltas need the rows their fact no longer holds. An incremental fact
    with the pre-hook `remove_rows_to_rebuild` (given the macro that selects the keys to rebuild,
    called only on incremental runs) moves each row it is about to rebuild or drop into
    `<fact>__replaced` (the columns named, the row's `built_at`, and `replaced_at`, this build's
    time), in the fact's own transaction: a fact and its removed rows always agree.

    A mart then applies everything since its own newest `built_at` (W): it adds the fact's rows
    built after W and subtracts the removed rows taken out after W that were built at or before
    W (a row both built and removed after W never reached the mart). That holds across runs the
    mart missed, for example when it failed. The mart's post-hook `prune_replaced` drops what it
    has applied; one mart reads each fact's removed rows.
#}

{% macro replaced_relation(fact) -%}
    {{- return(fact.incorporate(path={"identifier": fact.identifier ~ "__replaced"})) -}}
{%- endmacro %}


{% macro remove_rows_to_rebuild(keys_to_rebuild, key_columns, kept_columns) -%}
    {%- if is_incremental() %}
    {%- set replaced = replaced_relation(this) -%}
    {%- set columns = (key_columns + kept_columns + ['built_at']) | join(', ') -%}
    create table if not exists {{ replaced }} as
        select {{ columns }}, {{ built_at() }} as replaced_at from {{ this }} with no data;

    with to_rebuild as (
        {{ keys_to_rebuild() }}
    ),

    removed as (
        delete from {{ this }} as fact
        using to_rebuild
        where
            {%- for key in key_columns %}
            fact.{{ key }} = to_rebuild.{{ key }}{{ " and" if not loop.last }}
            {%- endfor %}
        returning fact.*
    )

    insert into {{ replaced }} ({{ columns }}, replaced_at)
    select {{ columns }}, {{ built_at() }} from removed
    {%- endif %}
{%- endmacro %}


{#
    Whether the incremental mart `this` can apply the deltas of `fact`: it has been built (with
    its `built_at`), the fact's removed rows exist, and the fact was not rebuilt whole since (a
    full refresh of the fact leaves no removed rows: every row is newer than the mart).
#}
{% macro deltas_apply(fact) -%}
    {%- if not (is_incremental() and execute) -%}
        {{- return(false) -}}
    {%- endif -%}
    {%- if 'built_at' not in adapter.get_columns_in_relation(this) | map(attribute='name') -%}
        {{- return(false) -}}
    {%- endif -%}
    {#- Asked of the database, not dbt's relation cache: the fact's pre-hook may have created
        the removed rows' table earlier in this same invocation. -#}
    {%- set query -%}
        select to_regclass('{{ replaced_relation(fact) }}') is not null
            and coalesce((select min(built_at) from {{ fact }})
                <= (select max(built_at) from {{ this }}), false)
    {%- endset -%}
    {{- return(run_query(query).columns[0].values()[0]) -}}
{%- endmacro %}


{% macro prune_replaced(fact) -%}
    {%- if is_incremental() -%}
    delete from {{ replaced_relation(fact) }}
    where replaced_at <= (select max(built_at) from {{ this }})
    {%- endif -%}
{%- endmacro %}


{#
    The rows a delta-maintained model writes: each group of `delta` (a CTE of `key_columns` and
    summed `measures`, +1 per row added, -1 per row removed) added to what `this` holds for it.
#}
{% macro add_delta_to_previous(delta, key_columns, measures) -%}
    select
        {%- for key in key_columns %}
        {{ delta }}.{{ key }},
        {%- endfor %}
        {%- for measure in measures %}
        coalesce(previous.{{ measure }}, 0) + {{ delta }}.{{ measure }} as {{ measure }}
        {{- "," if not loop.last }}
        {%- endfor %}
    from {{ delta }}
    left join {{ this }} as previous
        on
        {%- for key in key_columns %}
        {{ delta }}.{{ key }} = previous.{{ key }}{{ " and" if not loop.last }}
        {%- endfor %}
{%- endmacro %}


{#
    `summed` (the groups summed again from the whole fact), plus, when `this` exists, a zero row
    for each group it holds that `summed` no longer has: the model's post-hook deletes those.
#}
{% macro with_emptied_groups(summed, key_columns, measures) -%}
    select * from {{ summed }}
    {%- if is_incremental() %}
    union all
    select
        {%- for key in key_columns %}
        previous.{{ key }},
        {%- endfor %}
        {%- for measure in measures %}
        0{{ "," if not loop.last }}
        {%- endfor %}
    from {{ this }} as previous
    where not exists (
        select from {{ summed }}
        where
            {%- for key in key_columns %}
            {{ summed }}.{{ key }} = previous.{{ key }}{{ " and" if not loop.last }}
            {%- endfor %}
    )
    {%- endif %}
{%- endmacro %}
