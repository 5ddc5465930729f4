with source as (
    select * from {{ source('ml', 'model_metrics') }}
),

final as (
    select
        model_id,
        spec_name,
        product_group,
        split,
        examples,
        positives,
        base_rate,
        roc_auc,
        pr_auc,
        log_loss,
        brier,
        threshold,
        precision,
        recall,
        f1,
        true_positives,
        false_positives,
        true_negatives,
        false_negatives,
        oracle_roc_auc,
        evaluated_at,
        observable_oracle_roc_auc
    from source
)

select * from final
