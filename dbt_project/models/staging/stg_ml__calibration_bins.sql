with source as (
    select * from {{ source('ml', 'calibration_bins') }}
),

final as (
    select
        model_id,
        product_group,
        split,
        bin,
        bin_lower,
        bin_upper,
        examples,
        mean_predicted,
        observed_rate
    from source
)

select * from final
