with

source as (
    select * from {{ source('market', 'prices') }}
),

final as (
    select
        symbol::text as symbol,
        date::date as trade_date,
        open::numeric as open,
        high::numeric as high,
        low::numeric as low,
        close::numeric as close,
        volume::bigint as volume
    from source
)

select * from final
