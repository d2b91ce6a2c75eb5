-- A calendar from 1 January of the first order year to 31 December of the last year any order
-- was placed or any line received (a line ships before it is received). The bounds come from
-- fct_orders, a quarter of the rows of the lines.
with

orders as (
    select * from {{ ref('fct_orders') }}
),

bounds as (
    select
        date_trunc('year', min(order_date))::date as first_day,
        (
            date_trunc('year', max(greatest(order_date, last_receipt_date)))
            + interval '1 year' - interval '1 day'
        )::date as last_day
    from orders
),

days as (
    select day::date as date_day
    from bounds
    cross join generate_series(bounds.first_day, bounds.last_day, interval '1 day') as day
),

final as (
    select
        date_day,
        to_char(date_day, 'YYYYMMDD')::integer as date_key,
        extract(year from date_day)::integer as year,
        extract(quarter from date_day)::integer as quarter,
        extract(month from date_day)::integer as month,
        to_char(date_day, 'FMMonth') as month_name,
        extract(day from date_day)::integer as day_of_month,
        extract(doy from date_day)::integer as day_of_year,
        extract(isodow from date_day)::integer as day_of_week,
        to_char(date_day, 'FMDay') as day_name,
        extract(week from date_day)::integer as iso_week,
        extract(isoyear from date_day)::integer as iso_year,
        extract(isodow from date_day) in (6, 7) as is_weekend,
        date_trunc('month', date_day)::date as month_start,
        date_trunc('quarter', date_day)::date as quarter_start,
        date_trunc('year', date_day)::date as year_start
    from days
)

select * from final
