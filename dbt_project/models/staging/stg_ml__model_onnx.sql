{#- The registered models' ONNX bytes and sha256, for fct_score_reasons (a view: nothing copied). -#}
with source as (
    select * from {{ source('ml', 'model_registry') }}
),

final as (
    select
        model_id,
        product_group,
        onnx_model,
        onnx_sha256
    from source
)

select * from final
