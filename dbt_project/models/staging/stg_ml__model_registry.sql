{#- Without the ONNX bytes: scoring loads them from the registry itself (macros/scoring). -#}
with source as (
    select * from {{ source('ml', 'model_registry') }}
),

final as (
    select
        model_id,
        spec_name,
        product_group,
        algorithm,
        hyperparameters,
        trained_at,
        training_relation,
        train_cutoffs,
        validation_cutoffs,
        test_cutoffs,
        feature_names,
        feature_hash,
        threshold,
        threshold_rule,
        onnx_sha256,
        library_versions
    from source
)

select * from final
