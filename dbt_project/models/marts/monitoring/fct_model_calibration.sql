{#-
  Calibration and performance parts by score decile: one row per (product_group, model_id,
  as_of_date, decile) of the score history fct_propensity_scores, for every scored cutoff up to
  "now" (the run's scoring cutoff in dim_cutoffs). Expected positives (the sum of the scores)
  always; observed positives only once the label window [as_of_date, as_of_date + horizon_days)
  has matured (label_window_end <= now): a label is a purchase order of the group in that window,
  as in fct_training_examples, and no order at or after now is read.

  The *_sum columns are each decile's share of the figures of fct_model_performance, which only
  adds them up. Ranks are taken over the whole (group, model, cutoff), ascending by score, tied
  scores sharing their average rank:
  - roc_auc_rank_sum: sum of the ranks of the positives (Mann-Whitney:
    ROC AUC = (sum - P (P + 1) / 2) / (P N));
  - pr_auc_precision_sum: sum over positives of the precision at their score (rows at or above
    it); average precision = sum / P, as scikit-learn's average_precision_score;
  - brier_squared_error_sum: sum of (score - label)^2;
  - estimated_roc_auc_rank_sum, estimated_pr_auc_precision_sum: the same with every row counted
    as a positive of weight score and a negative of weight 1 - score (CBPE); the ROC AUC formula
    holds with W = sum of scores in place of P.

  A table rebuilt from itself: the cutoffs whose rows are missing or stale are computed from the
  score history (one sort per group, model and cutoff), the others are copied from the stored
  table (propensity_performance_plan), so a daily run reads the scores of the new cutoff and of
  the cutoff maturing that day, not the history. Run with --full-refresh after loading late
  orders of an already matured window.
-#}
{{ config(tags=['monitoring', 'monitoring_performance']) }}

{%- set plan = propensity_performance_plan(ref('fct_propensity_scores'), this) -%}
{%- set horizon = propensity_horizon_days() -%}

with scoring_cutoff as (
    select as_of_date as now_date
    from {{ ref('dim_cutoffs') }}
    where cutoff_role = 'scoring'
),

{# One small integer per (group, model, cutoff) to compute: the sort below partitions on it
   rather than on two names and a date. #}
partitions as (
    select
        as_of_date,
        product_group,
        model_id,
        cast(row_number() over (order by as_of_date, product_group, model_id) as integer) as partition_key,
        score_rows,
        scored_at
    from (
        select
            as_of_date,
            product_group,
            model_id,
            count(*) as score_rows,
            max(scored_at) as scored_at
        from {{ ref('fct_propensity_scores') }}
        where as_of_date in ({{ propensity_date_list(plan.compute) }})
        group by as_of_date, product_group, model_id
    ) as scored_partitions
),

cutoffs as (
    select
        as_of_date,
        cast({{ dbt.dateadd('day', horizon, 'as_of_date') }} as date) as label_window_end,
        sum(score_rows) as cutoff_score_rows,
        max(scored_at) as scored_at
    from partitions
    group by as_of_date
),

cutoff_status as (
    select
        cutoffs.*,
        cutoffs.label_window_end <= scoring_cutoff.now_date as is_matured
    from cutoffs
    cross join scoring_cutoff
),

labels as (
    {{ propensity_matured_labels(plan, ref('int_order_groups_summarised')) }}
),

labelled_scores as (
    select
        partitions.partition_key,
        scores.score,
        scores.decile,
        labels.customer_id is not null as is_positive
    from {{ ref('fct_propensity_scores') }} as scores
    inner join partitions
        on
            scores.as_of_date = partitions.as_of_date
            and scores.product_group = partitions.product_group
            and scores.model_id = partitions.model_id
    left join labels
        on
            scores.customer_id = labels.customer_id
            and scores.product_group = labels.product_group
            and scores.as_of_date = labels.as_of_date
    where scores.as_of_date in ({{ propensity_date_list(plan.compute) }})
),

{# One sort per (group, model, cutoff), descending by score; peers (tied scores) share rank()
   and cume_dist(), and the running sums (default frame) include them. Running sums of the
   scores are in fixed point, multiples of 2^-29 held as whole numbers in a double: exact up to
   2^24 rows, so they do not depend on the order the engine adds rows in. #}
ranked as (
    select
        partition_key,
        score,
        decile,
        is_positive,
        count(*) over whole as total_rows,
        rank() over by_score - 1 as rows_above,
        cast(round(cume_dist() over by_score * count(*) over whole) as bigint) as rows_at_or_above,
        sum(case when is_positive then 1 else 0 end) over by_score as positives_at_or_above,
        sum(round(score * {{ 2 ** 29 }})) over by_score / {{ 2 ** 29 }} as scores_at_or_above
    from labelled_scores
    window
        whole as (partition by partition_key),
        by_score as (partition by partition_key order by score desc)
),

{# Twice the average ascending rank of the row's tie group: 2 (rows below) + (tied rows) + 1. #}
row_parts as (
    select
        partition_key,
        decile,
        score,
        is_positive,
        2 * (total_rows - rows_at_or_above) + (rows_at_or_above - rows_above) + 1 as twice_rank,
        -- precision when every row scoring at or above this score is called positive
        cast(positives_at_or_above as double) / rows_at_or_above as precision_at_score,
        scores_at_or_above / rows_at_or_above as expected_precision_at_score
    from ranked
),

{# Sums of fractions over decimal(38, 20) (exact, so independent of the order the engine adds
   rows in: a rebuild gives the same bits); counts and doubled ranks over integers. #}
decile_parts as (
    select
        partition_key,
        decile,
        count(*) as n_rows,
        count(*) filter (where is_positive) as n_positives,
        sum(cast(score as decimal(38, 20))) as expected_positives,
        min(score) as min_score,
        max(score) as max_score,
        sum(case when is_positive then twice_rank else 0 end) / 2 as roc_auc_rank_sum,
        sum(cast(case when is_positive then precision_at_score else 0 end as decimal(38, 20)))
            as pr_auc_precision_sum,
        sum(cast(
            case when is_positive then (1 - score) * (1 - score) else score * score end
            as decimal(38, 20)
        )) as brier_squared_error_sum,
        sum(cast(score * twice_rank / 2 as decimal(38, 20))) as estimated_roc_auc_rank_sum,
        sum(cast(score * expected_precision_at_score as decimal(38, 20))) as estimated_pr_auc_precision_sum
    from row_parts
    group by partition_key, decile
),

computed as (
    select
        cast(partitions.product_group as {{ string_type() }}) as product_group,
        cast(partitions.model_id as {{ string_type() }}) as model_id,
        cast(partitions.as_of_date as date) as as_of_date,
        cast(decile_parts.decile as integer) as decile,
        cast(cutoff_status.label_window_end as date) as label_window_end,
        cast(cutoff_status.is_matured as boolean) as is_matured,
        cast(decile_parts.n_rows as bigint) as rows,
        cast(decile_parts.expected_positives as double) as expected_positives,
        cast(decile_parts.expected_positives as double) / decile_parts.n_rows as mean_score,
        cast(decile_parts.min_score as double) as min_score,
        cast(decile_parts.max_score as double) as max_score,
        cast(case when cutoff_status.is_matured then decile_parts.n_positives end as bigint) as positives,
        cast(
            case when cutoff_status.is_matured then decile_parts.n_positives / decile_parts.n_rows end
            as double
        ) as observed_rate,
        cast(case when cutoff_status.is_matured then decile_parts.roc_auc_rank_sum end as double)
            as roc_auc_rank_sum,
        cast(case when cutoff_status.is_matured then decile_parts.pr_auc_precision_sum end as double)
            as pr_auc_precision_sum,
        cast(case when cutoff_status.is_matured then decile_parts.brier_squared_error_sum end as double)
            as brier_squared_error_sum,
        cast(decile_parts.estimated_roc_auc_rank_sum as double) as estimated_roc_auc_rank_sum,
        cast(decile_parts.estimated_pr_auc_precision_sum as double) as estimated_pr_auc_precision_sum,
        cast(cutoff_status.cutoff_score_rows as bigint) as cutoff_score_rows,
        cast(cutoff_status.scored_at as timestamp) as scored_at
    from decile_parts
    inner join partitions on decile_parts.partition_key = partitions.partition_key
    inner join cutoff_status on partitions.as_of_date = cutoff_status.as_of_date
),

{%- if plan.keep %}

stored as (
    select {{ model.columns.keys() | join(', ') }}
    from {{ this }}
    where as_of_date in ({{ propensity_date_list(plan.keep) }})
),
{%- endif %}

final as (
    select * from computed
    {%- if plan.keep %}
    union all
    select * from stored
    {%- endif %}
)

select * from final
