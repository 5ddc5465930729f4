with metrics as (
    select * from {{ ref('stg_ml__model_metrics') }}
),

models as (
    select * from {{ ref('dim_models') }}
),

final as (
    select
        metrics.model_id,
        metrics.spec_name,
        metrics.product_group,
        models.algorithm,
        models.trained_at,
        models.test_cutoffs,
        models.is_champion,
        metrics.split,
        metrics.examples,
        metrics.positives,
        metrics.base_rate,
        metrics.roc_auc,
        metrics.pr_auc,
        metrics.log_loss,
        metrics.brier,
        metrics.threshold,
        metrics.precision,
        metrics.recall,
        metrics.f1,
        metrics.true_positives,
        metrics.false_positives,
        metrics.true_negatives,
        metrics.false_negatives,
        metrics.oracle_roc_auc,
        metrics.roc_auc - metrics.oracle_roc_auc as roc_auc_gap_to_oracle,
        metrics.observable_oracle_roc_auc,
        metrics.roc_auc - metrics.observable_oracle_roc_auc as roc_auc_gap_to_observable_oracle,
        metrics.evaluated_at
    from metrics
    inner join models on metrics.model_id = models.model_id
)

select * from final
