with registry as (
    select * from {{ ref('stg_ml__model_registry') }}
),

aliases as (
    select * from {{ ref('stg_ml__model_aliases') }}
),

final as (
    select
        registry.model_id,
        registry.spec_name,
        registry.product_group,
        registry.algorithm,
        registry.hyperparameters,
        registry.trained_at,
        registry.training_relation,
        registry.train_cutoffs,
        registry.validation_cutoffs,
        registry.test_cutoffs,
        registry.feature_names,
        registry.feature_hash,
        registry.threshold,
        registry.threshold_rule,
        registry.onnx_sha256,
        registry.library_versions,
        coalesce(bool_or(aliases.alias = 'champion'), false) as is_champion,
        coalesce(bool_or(aliases.alias = 'challenger'), false) as is_challenger
    from registry
    left join aliases on registry.model_id = aliases.model_id
    group by all
)

select * from final
