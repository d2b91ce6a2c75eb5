-- Per ticker and trading day: the simple return of the adjusted close, its moving average and
-- the volatility of its returns over the last `window_days` trading days (null until a full
-- window is there).

with

prices as (
    select * from {{ ref('int_prices_split_adjusted') }}
),

returns as (
    select
        symbol,
        trade_date,
        adj_close,
        adj_close / lag(adj_close) over by_day - 1 as daily_return,
        row_number() over by_day as day_number
    from prices
    window by_day as (partition by symbol order by trade_date)
),

windows as (
    select
        *,
        avg(adj_close) over last_days as moving_average,
        stddev_samp(daily_return) over last_days as volatility,
        count(daily_return) over last_days as returns_in_window
    from returns
    window last_days as (
        partition by symbol order by trade_date
        rows between {{ var('window_days') - 1 }} preceding and current row
    )
),

final as (
    -- Computed in exact numeric, published as double precision: measures, not amounts.
    select
        symbol,
        trade_date,
        adj_close,
        daily_return::double precision as daily_return,
        case
            when day_number >= {{ var('window_days') }} then moving_average
        end::double precision as moving_average_20d,
        case
            when returns_in_window = {{ var('window_days') }} then volatility
        end::double precision as volatility_20d
    from windows
)

select * from final
