with source as (
    select * from {{ source('ml', 'lift_by_decile') }}
),

final as (
    select
        model_id,
        product_group,
        split,
        decile,
        customers,
        positives,
        response_rate,
        lift,
        cumulative_customers,
        cumulative_positives,
        cumulative_gains,
        cumulative_lift
    from source
)

select * from final
