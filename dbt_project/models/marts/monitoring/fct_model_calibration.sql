{#-
  Calibration and performance parts by score decile: one row per (product_group, model_id,
  as_of_date, decile) of the score history fct_propensity_scores, for every scored cutoff up to
  "now" (the run's scoring cutoff in dim_cutoffs). Expected positives (the sum of the scores)
  always; observed positives only once the label window [as_of_date, as_of_date + horizon_days)
  has matured (label_window_end <= now): a label is a purchase order of the group in that window,
  as in fct_training_examples, and no order at or after now is read.

  The *_sum columns are each decile's share of the performance figures of fct_model_performance,
  computed over the whole (group, model, cutoff) sorted by score, so that model only adds them up:
  - roc_auc_rank_sum: sum of the ranks of the positives (ascending by score, tied scores share
    their average rank); Mann-Whitney: ROC AUC = (sum - P (P + 1) / 2) / (P N);
  - pr_auc_precision_sum: sum over positives of the precision at their score (rows at or above
    it); average precision = sum / P (scikit-learn's average_precision_score);
  - brier_squared_error_sum: sum of (score - label)^2;
  - estimated_roc_auc_pair_sum, estimated_pr_auc_precision_sum: the same with every row counted as
    a positive of weight score and a negative of weight 1 - score (CBPE).

  A table rebuilt from itself: the cutoffs whose rows are missing or stale are computed from the
  score history, the others are copied from the stored table (propensity_performance_plan), so a
  daily run reads the scores of the new cutoff and of the cutoff maturing today, not the history.
  Run with --full-refresh after loading late orders of an already matured window.
-#}
{{ config(tags=['monitoring']) }}

{%- set plan = propensity_performance_plan(ref('fct_propensity_scores'), this) -%}
{%- set horizon = propensity_horizon_days() -%}
{%- set now_literal = propensity_date_literal(plan.now) if plan.now is not none else 'cast(null as date)' -%}

with scoring_cutoff as (
    select as_of_date as now_date
    from {{ ref('dim_cutoffs') }}
    where cutoff_role = 'scoring'
),

scores as (
    select
        customer_id,
        product_group,
        model_id,
        as_of_date,
        score,
        decile,
        scored_at
    from {{ ref('fct_propensity_scores') }}
    where as_of_date in ({{ propensity_date_list(plan.compute) }})
),

cutoffs as (
    select
        scores.as_of_date,
        cast({{ dbt.dateadd('day', horizon, 'scores.as_of_date') }} as date) as label_window_end,
        count(*) as cutoff_score_rows,
        max(scores.scored_at) as scored_at
    from scores
    group by scores.as_of_date
),

cutoff_status as (
    select
        cutoffs.*,
        cutoffs.label_window_end <= scoring_cutoff.now_date as is_matured
    from cutoffs
    cross join scoring_cutoff
),

-- Only the matured cutoffs need labels; orders at or after now are never read.
purchases as (
    select
        customer_id,
        product_group,
        order_date
    from {{ ref('int_order_groups_summarised') }}
    where
        is_purchase
        {%- if plan.matured %}
            and order_date >= {{ propensity_date_literal(plan.matured | min) }}
            and order_date < {{ now_literal }}
        {%- else %}
            and false
        {%- endif %}
),

labels as (
    select distinct
        purchases.customer_id,
        purchases.product_group,
        cutoff_status.as_of_date
    from purchases
    inner join cutoff_status
        on
            cutoff_status.is_matured
            and purchases.order_date >= cutoff_status.as_of_date
            and purchases.order_date < cutoff_status.label_window_end
),

labelled_scores as (
    select
        scores.product_group,
        scores.model_id,
        scores.as_of_date,
        scores.score,
        scores.decile,
        labels.customer_id is not null as is_positive
    from scores
    left join labels
        on
            scores.customer_id = labels.customer_id
            and scores.product_group = labels.product_group
            and scores.as_of_date = labels.as_of_date
),

{#- Sums of fractions are taken over decimal(38, 20): exact, so they do not depend on the order
    the engine adds rows in, and a rebuild gives the same bits (values stay below 10^18). Counts
    are bigints; ranks are whole or half numbers, exact in a double. #}
-- One row per distinct (score, decile): a tie group crossing a decile boundary has two.
score_deciles as (
    select
        product_group,
        model_id,
        as_of_date,
        score,
        cast(score as decimal(38, 20)) as exact_score,
        decile,
        count(*) as n_rows,
        count(*) filter (where is_positive) as n_positives
    from labelled_scores
    group by product_group, model_id, as_of_date, score, decile
),

score_levels as (
    select
        product_group,
        model_id,
        as_of_date,
        score,
        exact_score,
        cast(sum(n_rows) as bigint) as level_rows,
        cast(sum(n_positives) as bigint) as level_positives
    from score_deciles
    group by product_group, model_id, as_of_date, score, exact_score
),

{# One sort ascending by score; "at or above" a score = the total minus what lies below it. #}
level_running as (
    select
        product_group,
        model_id,
        as_of_date,
        score,
        level_rows,
        level_rows - level_rows * exact_score as level_expected_negatives,
        cast(coalesce(sum(level_rows) over below, 0) as bigint) as rows_below,
        cast(coalesce(sum(level_positives) over below, 0) as bigint) as positives_below,
        coalesce(sum(level_rows * exact_score) over below, 0) as expected_positives_below,
        coalesce(sum(level_rows - level_rows * exact_score) over below, 0) as expected_negatives_below,
        cast(sum(level_rows) over model_cutoff as bigint) as total_rows,
        cast(sum(level_positives) over model_cutoff as bigint) as total_positives,
        sum(level_rows * exact_score) over model_cutoff as total_expected_positives
    from score_levels
    window
        model_cutoff as (partition by product_group, model_id, as_of_date),
        below as (
            partition by product_group, model_id, as_of_date
            order by score
            rows between unbounded preceding and 1 preceding
        )
),

level_stats as (
    select
        product_group,
        model_id,
        as_of_date,
        score,
        -- average rank of the tied rows at this score (ranks 1..n ascending by score)
        cast(rows_below as double) + (level_rows + 1) / 2 as average_rank,
        -- precision when every row scoring at or above this score is called positive
        cast(total_positives - positives_below as double)
        / cast(total_rows - rows_below as double) as precision_at_score,
        cast(total_expected_positives - expected_positives_below as double)
        / cast(total_rows - rows_below as double) as expected_precision_at_score,
        -- negative weight a positive weight at this score outranks: all below, half of the ties
        cast(expected_negatives_below + level_expected_negatives * 0.5 as double) as expected_negatives_outranked
    from level_running
),

decile_parts as (
    select
        score_deciles.product_group,
        score_deciles.model_id,
        score_deciles.as_of_date,
        score_deciles.decile,
        cast(sum(score_deciles.n_rows) as bigint) as n_rows,
        cast(sum(score_deciles.n_positives) as bigint) as n_positives,
        sum(score_deciles.n_rows * score_deciles.exact_score) as expected_positives,
        min(score_deciles.score) as min_score,
        max(score_deciles.score) as max_score,
        sum(cast(score_deciles.n_positives * level_stats.average_rank as decimal(38, 20))) as roc_auc_rank_sum,
        sum(
            cast(score_deciles.n_positives * level_stats.precision_at_score as decimal(38, 20))
        ) as pr_auc_precision_sum,
        sum(cast(
            (score_deciles.n_rows - score_deciles.n_positives) * score_deciles.score * score_deciles.score
            + score_deciles.n_positives * (1 - score_deciles.score) * (1 - score_deciles.score)
            as decimal(38, 20)
        )) as brier_squared_error_sum,
        sum(cast(
            score_deciles.n_rows * score_deciles.score * level_stats.expected_negatives_outranked
            as decimal(38, 20)
        )) as estimated_roc_auc_pair_sum,
        sum(cast(
            score_deciles.n_rows * score_deciles.score * level_stats.expected_precision_at_score
            as decimal(38, 20)
        )) as estimated_pr_auc_precision_sum
    from score_deciles
    inner join level_stats
        on
            score_deciles.product_group = level_stats.product_group
            and score_deciles.model_id = level_stats.model_id
            and score_deciles.as_of_date = level_stats.as_of_date
            and score_deciles.score = level_stats.score
    group by
        score_deciles.product_group,
        score_deciles.model_id,
        score_deciles.as_of_date,
        score_deciles.decile
),

computed as (
    select
        cast(decile_parts.product_group as varchar) as product_group,
        cast(decile_parts.model_id as varchar) as model_id,
        cast(decile_parts.as_of_date as date) as as_of_date,
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
        cast(decile_parts.estimated_roc_auc_pair_sum as double) as estimated_roc_auc_pair_sum,
        cast(decile_parts.estimated_pr_auc_precision_sum as double) as estimated_pr_auc_precision_sum,
        cast(cutoff_status.cutoff_score_rows as bigint) as cutoff_score_rows,
        cast(cutoff_status.scored_at as timestamp) as scored_at
    from decile_parts
    inner join cutoff_status on decile_parts.as_of_date = cutoff_status.as_of_date
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
