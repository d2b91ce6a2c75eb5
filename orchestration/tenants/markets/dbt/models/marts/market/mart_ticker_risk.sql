-- Each ticker on its latest trading day: price, trend and risk at a glance.

with

daily as (
    select * from {{ ref('fct_daily_returns') }}
),

tickers as (
    select * from {{ ref('stg_market__tickers') }}
),

latest as (
    select distinct on (symbol) *
    from daily
    order by symbol, trade_date desc
),

final as (
    select
        tickers.symbol,
        tickers.ticker_name,
        latest.trade_date as as_of,
        latest.adj_close,
        latest.moving_average_20d,
        latest.adj_close > latest.moving_average_20d as above_moving_average,
        latest.volatility_20d,
        latest.volatility_20d * sqrt(252) as annualised_volatility
    from tickers
    inner join latest
        on latest.symbol = tickers.symbol
)

select * from final
