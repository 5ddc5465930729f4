{%- set columns = raw_contract_columns('raw', 'orders') %}

with source as (
    select * from {{ source('raw', 'orders') }}
),

final as (
    select
        cast(order_id as bigint) as order_id,
        cast(customer_id as bigint) as customer_id,
        {{ raw_timestamp('ordered_at', columns) }} as ordered_at
    from source
)

select * from final
