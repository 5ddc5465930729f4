{%- set columns = raw_contract_columns('raw', 'order_lines') %}

with source as (
    select * from {{ source('raw', 'order_lines') }}
),

final as (
    select
        cast(order_id as bigint) as order_id,
        cast(product_id as {{ string_type() }}) as product_id,
        cast(quantity as integer) as quantity,
        cast(unit_price as double) as unit_price,
        cast(quantity as double) * cast(unit_price as double) as line_amount,
        cast(quantity as integer) < 0 as is_return
    from source
)

select * from final
