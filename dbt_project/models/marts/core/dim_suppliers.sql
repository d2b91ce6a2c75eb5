-- Suppliers with their nation and region.
with

suppliers as (
    select * from {{ ref('stg_erp__suppliers') }}
),

nations as (
    select * from {{ ref('int_nations_joined_to_regions') }}
),

final as (
    select
        suppliers.supplier_id,
        suppliers.supplier_name,
        suppliers.address,
        suppliers.phone,
        suppliers.account_balance,
        suppliers.nation_id,
        nations.nation_name,
        nations.region_id,
        nations.region_name
    from suppliers
    left join nations
        on suppliers.nation_id = nations.nation_id
)

select * from final
