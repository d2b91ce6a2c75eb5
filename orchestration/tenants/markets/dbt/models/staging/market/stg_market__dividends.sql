with

source as (
    select * from {{ source('market', 'dividends') }}
),

final as (
    select
        symbol::text as symbol,
        ex_date::date as ex_date,
        amount::numeric as amount
    from source
)

select * from final
