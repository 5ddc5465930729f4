with source as (
    select * from {{ source('ml', 'feature_importance') }}
),

final as (
    select
        model_id,
        product_group,
        feature_name,
        importance_mean,
        importance_std,
        importance_rank,
        method,
        mean_abs_shap,
        shap_rank,
        shap_method
    from source
)

select * from final
