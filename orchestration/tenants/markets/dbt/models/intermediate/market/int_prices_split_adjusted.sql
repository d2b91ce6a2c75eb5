-- Prices on one scale per ticker: a split of r new shares per old one divides every price
-- before its day by r, so returns across the split are what a holder earned.

with

prices as (
    select * from {{ ref('stg_market__prices') }}
),

splits as (
    select * from {{ ref('stg_market__splits') }}
),

factors as (
    -- The product of the ratios of the splits after each day (1 without any); the ratios are
    -- small integers, so rounding the exp/ln product gives them back exactly.
    select
        prices.symbol,
        prices.trade_date,
        coalesce(round(exp(sum(ln(splits.split_ratio))), 10), 1) as split_factor
    from prices
    left join splits
        on splits.symbol = prices.symbol
        and splits.split_date > prices.trade_date
    group by prices.symbol, prices.trade_date
),

final as (
    select
        prices.symbol,
        prices.trade_date,
        factors.split_factor,
        prices.open / factors.split_factor as adj_open,
        prices.high / factors.split_factor as adj_high,
        prices.low / factors.split_factor as adj_low,
        prices.close / factors.split_factor as adj_close,
        prices.volume * factors.split_factor as adj_volume
    from prices
    inner join factors
        on factors.symbol = prices.symbol
        and factors.trade_date = prices.trade_date
)

select * from final
