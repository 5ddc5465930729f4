with importance as (
    select * from {{ ref('stg_ml__feature_importance') }}
),

models as (
    select * from {{ ref('dim_models') }}
),

final as (
    select
        importance.model_id,
        importance.product_group,
        models.algorithm,
        models.is_champion,
        importance.feature_name,
        importance.importance_mean,
        importance.importance_std,
        importance.importance_rank,
        importance.method,
        importance.mean_abs_shap,
        importance.shap_rank,
        importance.shap_method
    from importance
    inner join models on importance.model_id = models.model_id
)

select * from final
