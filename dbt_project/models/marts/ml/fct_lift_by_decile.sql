with lift as (
    select * from {{ ref('stg_ml__lift_by_decile') }}
),

models as (
    select * from {{ ref('dim_models') }}
),

final as (
    select
        lift.model_id,
        lift.product_group,
        models.algorithm,
        models.is_champion,
        lift.split,
        lift.decile,
        lift.customers,
        lift.positives,
        lift.response_rate,
        lift.lift,
        lift.cumulative_customers,
        lift.cumulative_positives,
        lift.cumulative_gains,
        lift.cumulative_lift
    from lift
    inner join models on lift.model_id = models.model_id
)

select * from final
