{%- set columns = raw_contract_columns('raw', 'products') %}

with source as (
    select * from {{ source('raw', 'products') }}
),

final as (
    select
        cast(product_id as varchar) as product_id,
        cast(product_name as varchar) as product_name,
        cast(category as varchar) as category
    from source
)

select * from final
