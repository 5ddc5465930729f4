{%- set columns = raw_contract_columns('raw', 'product_group_rules') %}

with source as (
    select * from {{ source('raw', 'product_group_rules') }}
),

final as (
    select
        cast(product_group as varchar) as product_group,
        cast(match_on as varchar) as match_on,
        cast(pattern as varchar) as pattern
    from source
)

select * from final
