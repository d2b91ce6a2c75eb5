with

source as (
    select * from {{ source('market', 'tickers') }}
),

final as (
    select
        symbol::text as symbol,
        name::text as ticker_name,
        exchange::text as exchange,
        currency::text as currency,
        listed_on::date as listed_on
    from source
)

select * from final
