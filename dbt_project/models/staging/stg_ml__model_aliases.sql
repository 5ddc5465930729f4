with source as (
    select * from {{ source('ml', 'model_aliases') }}
),

final as (
    select
        product_group,
        alias,
        model_id,
        updated_at
    from source
)

select * from final
