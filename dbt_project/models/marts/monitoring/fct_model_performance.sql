{#-
  Realised and estimated performance of the scores over time: one row per (product_group,
  model_id, as_of_date) of the score history up to "now" (the run's scoring cutoff), beside the
  model's own test-period figures (ml.model_metrics, ml.lift_by_decile).
  - Estimated (every cutoff, from the calibrated scores alone, CBPE): each row counts as a
    positive of weight score and a negative of weight 1 - score; the estimated ROC AUC is
    P(score of a positive > score of a negative), ties half, under these weights (the area under
    the expected ROC curve, each row's own pair included).
  - Realised (null until label_window_end <= now): from the labels of fct_model_calibration.
  Both sum the per-decile parts of fct_model_calibration (see its header), so this table is
  cheap to rebuild; lift at 10 % is the response of decile 1 of fct_propensity_scores (ntile by
  score desc, ties broken by customer_id ascending) over the base rate.
  Degenerate figures are null, never a division by zero: AUCs when a class is absent, PR AUC and
  lift without positives.
-#}
{{ config(tags=['monitoring', 'monitoring_performance']) }}

with calibration as (
    select * from {{ ref('fct_model_calibration') }}
),

test_metrics as (
    select
        model_id,
        base_rate,
        roc_auc,
        pr_auc,
        brier
    from {{ ref('stg_ml__model_metrics') }}
    where split = 'test'
),

test_lift as (
    select
        model_id,
        lift
    from {{ ref('stg_ml__lift_by_decile') }}
    where split = 'test' and decile = 1
),

{# The parts are summed as decimal(38, 20) (exact: the result does not depend on the order the
   engine adds the deciles in, so a rebuild gives the same bits), then divided as doubles. #}
totals as (
    select
        product_group,
        model_id,
        as_of_date,
        label_window_end,
        is_matured,
        scored_at,
        cast(sum(rows) as double) as n_rows,
        cast(sum(positives) as double) as n_positives,
        cast(sum(cast(expected_positives as decimal(38, 20))) as double) as expected_positives,
        cast(sum(cast(roc_auc_rank_sum as decimal(38, 20))) as double) as roc_auc_rank_sum,
        cast(sum(cast(pr_auc_precision_sum as decimal(38, 20))) as double) as pr_auc_precision_sum,
        cast(sum(cast(brier_squared_error_sum as decimal(38, 20))) as double) as brier_squared_error_sum,
        cast(sum(cast(estimated_roc_auc_rank_sum as decimal(38, 20))) as double) as estimated_roc_auc_rank_sum,
        cast(sum(cast(estimated_pr_auc_precision_sum as decimal(38, 20))) as double)
            as estimated_pr_auc_precision_sum,
        cast(sum(case when decile = 1 then rows end) as double) as top_decile_rows,
        cast(sum(case when decile = 1 then positives end) as double) as top_decile_positives,
        cast(sum(case when decile = 1 then expected_positives end) as double) as top_decile_expected_positives
    from calibration
    group by product_group, model_id, as_of_date, label_window_end, is_matured, scored_at
),

figures as (
    select
        product_group,
        model_id,
        as_of_date,
        label_window_end,
        is_matured,
        scored_at,
        n_rows,
        n_positives,
        expected_positives,
        expected_positives / n_rows as estimated_base_rate,
        -- the same with W = expected_positives fractional positives
        (estimated_roc_auc_rank_sum - expected_positives * (expected_positives + 1) / 2)
        / nullif(expected_positives * (n_rows - expected_positives), 0) as estimated_roc_auc,
        estimated_pr_auc_precision_sum / nullif(expected_positives, 0) as estimated_pr_auc,
        (top_decile_expected_positives / top_decile_rows)
        / nullif(expected_positives / n_rows, 0) as estimated_lift_at_10,
        n_positives / n_rows as base_rate,
        -- Mann-Whitney: U = (rank sum of the positives) - P (P + 1) / 2; AUC = U / (P N)
        (roc_auc_rank_sum - n_positives * (n_positives + 1) / 2)
        / nullif(n_positives * (n_rows - n_positives), 0) as roc_auc,
        pr_auc_precision_sum / nullif(n_positives, 0) as pr_auc,
        brier_squared_error_sum / n_rows as brier,
        (top_decile_positives / top_decile_rows) / nullif(n_positives / n_rows, 0) as lift_at_10
    from totals
),

final as (
    select
        cast(figures.product_group as {{ string_type() }}) as product_group,
        cast(figures.model_id as {{ string_type() }}) as model_id,
        cast(figures.as_of_date as date) as as_of_date,
        cast(figures.label_window_end as date) as label_window_end,
        cast(figures.is_matured as boolean) as is_matured,
        cast(figures.n_rows as bigint) as rows,
        cast(figures.expected_positives as double) as expected_positives,
        cast(figures.estimated_base_rate as double) as estimated_base_rate,
        cast(figures.estimated_roc_auc as double) as estimated_roc_auc,
        cast(figures.estimated_pr_auc as double) as estimated_pr_auc,
        cast(figures.estimated_lift_at_10 as double) as estimated_lift_at_10,
        cast(figures.n_positives as bigint) as positives,
        cast(figures.base_rate as double) as base_rate,
        cast(figures.roc_auc as double) as roc_auc,
        cast(figures.pr_auc as double) as pr_auc,
        cast(figures.brier as double) as brier,
        cast(figures.lift_at_10 as double) as lift_at_10,
        cast(figures.estimated_roc_auc - figures.roc_auc as double) as roc_auc_estimate_error,
        cast(test_metrics.base_rate as double) as test_base_rate,
        cast(test_metrics.roc_auc as double) as test_roc_auc,
        cast(test_metrics.pr_auc as double) as test_pr_auc,
        cast(test_metrics.brier as double) as test_brier,
        cast(test_lift.lift as double) as test_lift_at_10,
        cast(figures.scored_at as timestamp) as scored_at
    from figures
    left join test_metrics on figures.model_id = test_metrics.model_id
    left join test_lift on figures.model_id = test_lift.model_id
)

select * from final
