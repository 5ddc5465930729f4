with source as (
    select * from {{ source('ml', 'reference_distributions') }}
),

final as (
    select
        model_id,
        product_group,
        feature_name,
        feature_kind,
        bin,
        bin_lower,
        bin_upper,
        category,
        reference_rows,
        reference_share
    from source
)

select * from final
