-- A split left unadjusted shows as a fall of 50 % (2-for-1) or more in one day; the demo's
-- prices never move 40 % in a day. Rows returned are failures.
select symbol, trade_date, daily_return
from {{ ref('fct_daily_returns') }}
where abs(daily_return) > 0.4
