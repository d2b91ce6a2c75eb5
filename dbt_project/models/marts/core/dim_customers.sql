-- One row per version of a customer (SCD2), from the customers snapshot, with its geography.
with

customer_versions as (
    select * from {{ ref('snap_erp__customers') }}
),

nations as (
    select * from {{ ref('int_nations_joined_to_regions') }}
),

final as (
    select
        customer_versions.dbt_scd_id as customer_key,
        customer_versions.customer_id,
        customer_versions.customer_name,
        customer_versions.address,
        customer_versions.phone,
        customer_versions.account_balance,
        customer_versions.market_segment,
        customer_versions.nation_id,
        nations.nation_name,
        nations.region_id,
        nations.region_name,
        customer_versions.dbt_valid_from as valid_from,
        customer_versions.dbt_valid_to as valid_to,
        customer_versions.dbt_valid_to is null as is_current
    from customer_versions
    left join nations
        on customer_versions.nation_id = nations.nation_id
)

select * from final
