with

source as (
    select * from {{ source('market', 'splits') }}
),

final as (
    select
        symbol::text as symbol,
        date::date as split_date,
        numerator::numeric / denominator::numeric as split_ratio
    from source
)

select * from final
