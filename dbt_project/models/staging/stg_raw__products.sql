{%- set columns = raw_contract_columns('raw', 'products') %}

with source as (
    select * from {{ source('raw', 'products') }}
),

final as (
    select
        cast(product_id as {{ string_type() }}) as product_id,
        cast(product_name as {{ string_type() }}) as product_name,
        cast(category as {{ string_type() }}) as category
    from source
)

select * from final
