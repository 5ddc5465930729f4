with source as (
    select * from {{ source('raw', 'orders') }}
),

final as (
    select
        cast(order_id as bigint) as order_id,
        cast(customer_id as bigint) as customer_id,
        cast(ordered_at as timestamp) as ordered_at
    from source
)

select * from final
