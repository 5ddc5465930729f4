{%- set columns = raw_contract_columns('raw', 'product_group_rules') %}

with source as (
    select * from {{ source('raw', 'product_group_rules') }}
),

final as (
    select
        cast(product_group as {{ string_type() }}) as product_group,
        cast(match_on as {{ string_type() }}) as match_on,
        cast(pattern as {{ string_type() }}) as pattern
    from source
)

select * from final
