with bins as (
    select * from {{ ref('stg_ml__calibration_bins') }}
),

models as (
    select * from {{ ref('dim_models') }}
),

final as (
    select
        bins.model_id,
        bins.product_group,
        models.algorithm,
        models.is_champion,
        bins.split,
        bins.bin,
        bins.bin_lower,
        bins.bin_upper,
        bins.examples,
        bins.mean_predicted,
        bins.observed_rate,
        bins.observed_rate - bins.mean_predicted as calibration_error
    from bins
    inner join models on bins.model_id = models.model_id
)

select * from final
