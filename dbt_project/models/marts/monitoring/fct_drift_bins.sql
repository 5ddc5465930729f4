{#-
  Drift bins: for the scoring cutoff (dim_cutoffs role 'scoring') and the model that scored each
  product group at it (fct_propensity_scores), every reference bin of the model's features and
  score (ml.reference_distributions, stored at training) with the share of its training rows and
  of the current rows in it. fct_feature_drift and fct_score_drift sum the bins into PSI and
  Jensen-Shannon divergence.

  Current rows: the scoring features and the scores of at most drift_sample_customers customers
  (a hash sample, the same customers every run), cast to float as the model reads them.
  Customer-level features (the columns fct_scoring_features takes from fct_customer_features) have
  the same value in every product group, so they are read once and binned once per distinct set
  of edges (models trained on the same rows share them); only the other (group) features and the
  score are read per group. Values are counted before they are binned, so each distinct value is
  looked up once.
  Incremental, delete+insert on as_of_date: a re-run replaces its cutoff, earlier cutoffs stay.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='as_of_date',
    on_schema_change='fail',
    tags=['monitoring'],
) }}

{%- set keys = ['customer_id', 'product_group', 'as_of_date'] -%}
{%- set scoring_columns = drift_numeric_columns(ref('fct_scoring_features'), exclude=keys) -%}
{%- set customer_level = drift_numeric_columns(ref('fct_customer_features'), exclude=keys) -%}
{%- set customer_columns = [] -%}
{%- set group_columns = [] -%}
{%- for c in scoring_columns -%}
    {%- do (customer_columns if c in customer_level else group_columns).append(c) -%}
{%- endfor %}

with cutoffs as (
    select as_of_date from {{ ref('dim_cutoffs') }}
    where cutoff_role = 'scoring'
),

-- The model that scored each group at the cutoff (the champion of that run).
scored_models as (
    select distinct
        product_group,
        as_of_date,
        model_id
    from {{ ref('fct_propensity_scores') }}
    where as_of_date in (select cutoffs.as_of_date from cutoffs)
),

reference_bins as (
    select
        scored_models.as_of_date,
        reference.*
    from {{ ref('stg_ml__reference_distributions') }} as reference
    inner join scored_models
        on
            reference.model_id = scored_models.model_id
            and reference.product_group = scored_models.product_group
),

-- One row per (model, feature or score) with its edges; the values it bins are those of its
-- feature (and, for group features and the score, of its product group).
distributions as (
    select
        model_id,
        product_group,
        as_of_date,
        feature_kind,
        feature_name,
        cast(list(coalesce(bin_lower, category) order by bin) as {{ string_type() }}) as edges,
        case
            when feature_kind = 'score' then product_group
            {%- if group_columns %}
            when feature_name in (
                {%- for c in group_columns %}{{ propensity_string_literal(c) }}{{ ', ' if not loop.last }}{% endfor -%}
            ) then product_group
            {%- endif %}
        end as value_group
    from reference_bins
    group by model_id, product_group, as_of_date, feature_kind, feature_name
),

-- Distributions with the same values and edges share a key: they are binned once.
keyed_distributions as (
    select
        *,
        dense_rank() over (
            order by as_of_date, feature_kind, feature_name, value_group, edges
        ) as distribution_key
    from distributions
),

sampled_customers as (
    select
        customer_id,
        as_of_date
    from {{ ref('fct_customer_features') }}
    where as_of_date in (select cutoffs.as_of_date from cutoffs)
    qualify row_number() over (
        partition by as_of_date order by hash(customer_id), customer_id
    ) <= {{ drift_sample_size() }}
),

customer_rows as (
    select customer_features.*
    from {{ ref('fct_customer_features') }} as customer_features
    inner join sampled_customers
        on
            customer_features.customer_id = sampled_customers.customer_id
            and customer_features.as_of_date = sampled_customers.as_of_date
),

group_rows as (
    select scoring_features.*
    from {{ ref('fct_scoring_features') }} as scoring_features
    inner join sampled_customers
        on
            scoring_features.customer_id = sampled_customers.customer_id
            and scoring_features.as_of_date = sampled_customers.as_of_date
    where scoring_features.product_group in (select scored_models.product_group from scored_models)
),

customer_values as (
    {{ drift_unpivot('customer_rows', customer_columns, ['as_of_date']) }}
),

group_values as (
    {{ drift_unpivot('group_rows', group_columns, ['as_of_date', 'product_group']) }}
),

score_values as (
    select
        scores.as_of_date,
        scores.product_group,
        cast(scores.score as float) as feature_value
    from {{ ref('fct_propensity_scores') }} as scores
    inner join sampled_customers
        on
            scores.customer_id = sampled_customers.customer_id
            and scores.as_of_date = sampled_customers.as_of_date
),

-- Rows per distinct value of each feature (and group) and of each group's score.
value_counts as (
    select
        as_of_date,
        feature_name,
        cast(null as {{ string_type() }}) as value_group,
        feature_value,
        count(*) as value_rows
    from customer_values
    group by as_of_date, feature_name, feature_value
    union all
    select
        as_of_date,
        feature_name,
        product_group as value_group,
        feature_value,
        count(*) as value_rows
    from group_values
    group by as_of_date, feature_name, product_group, feature_value
    union all
    select
        as_of_date,
        cast(null as {{ string_type() }}) as feature_name,
        product_group as value_group,
        feature_value,
        count(*) as value_rows
    from score_values
    group by as_of_date, product_group, feature_value
),

distribution_values as (
    select
        shared.distribution_key,
        shared.feature_kind,
        value_counts.feature_value,
        value_counts.value_rows
    from (
        select distinct
            distribution_key,
            as_of_date,
            feature_kind,
            -- the score's values have no feature name
            case when feature_kind != 'score' then feature_name end as feature_name,
            value_group
        from keyed_distributions
    ) as shared
    inner join value_counts
        on
            shared.as_of_date = value_counts.as_of_date
            and shared.feature_name is not distinct from value_counts.feature_name
            and shared.value_group is not distinct from value_counts.value_group
),

distribution_bins as (
    select distinct
        keyed_distributions.distribution_key,
        keyed_distributions.feature_kind,
        reference_bins.bin,
        coalesce(reference_bins.bin_lower, cast('-infinity' as double)) as bin_start,
        reference_bins.category
    from reference_bins
    inner join keyed_distributions
        on
            reference_bins.model_id = keyed_distributions.model_id
            and reference_bins.feature_kind = keyed_distributions.feature_kind
            and reference_bins.feature_name = keyed_distributions.feature_name
),

numeric_values as (
    select * from distribution_values
    where feature_kind != 'categorical'
),

numeric_bins as (
    select * from distribution_bins
    where feature_kind != 'categorical'
),

-- A value falls in the bin with the greatest lower edge at or below it ([lower, upper) bins; the
-- first bin starts at -infinity).
numeric_counts as (
    select
        numeric_values.distribution_key,
        numeric_bins.bin,
        sum(numeric_values.value_rows) as current_rows
    from numeric_values
    asof inner join numeric_bins
        on
            numeric_values.distribution_key = numeric_bins.distribution_key
            and numeric_values.feature_value >= numeric_bins.bin_start
    group by numeric_values.distribution_key, numeric_bins.bin
),

categorical_values as (
    select * from distribution_values
    where feature_kind = 'categorical'
),

categorical_bins as (
    select * from distribution_bins
    where feature_kind = 'categorical'
),

-- A category seen in training falls in its bin, any other value in the `other` bin.
categorical_counts as (
    select
        categorical_values.distribution_key,
        coalesce(seen.bin, other.bin) as bin,
        sum(categorical_values.value_rows) as current_rows
    from categorical_values
    inner join categorical_bins as other
        on
            categorical_values.distribution_key = other.distribution_key
            and other.category is null
    left join categorical_bins as seen
        on
            categorical_values.distribution_key = seen.distribution_key
            and categorical_values.feature_value = seen.category
    group by categorical_values.distribution_key, coalesce(seen.bin, other.bin)
),

current_counts as (
    select * from numeric_counts
    union all
    select * from categorical_counts
),

binned as (
    select
        reference_bins.product_group,
        reference_bins.model_id,
        reference_bins.as_of_date,
        reference_bins.feature_kind,
        reference_bins.feature_name,
        reference_bins.bin,
        reference_bins.bin_lower,
        reference_bins.bin_upper,
        reference_bins.category,
        reference_bins.reference_rows,
        reference_bins.reference_share,
        cast(coalesce(current_counts.current_rows, 0) as bigint) as current_rows
    from reference_bins
    inner join keyed_distributions
        on
            reference_bins.model_id = keyed_distributions.model_id
            and reference_bins.feature_kind = keyed_distributions.feature_kind
            and reference_bins.feature_name = keyed_distributions.feature_name
    left join current_counts
        on
            keyed_distributions.distribution_key = current_counts.distribution_key
            and reference_bins.bin = current_counts.bin
),

final as (
    select
        product_group,
        model_id,
        as_of_date,
        feature_kind,
        feature_name,
        bin,
        bin_lower,
        bin_upper,
        category,
        reference_rows,
        reference_share,
        current_rows,
        current_rows / sum(current_rows) over (
            partition by model_id, as_of_date, feature_kind, feature_name
        ) as current_share
    from binned
    -- a distribution without current values (no scores for its group) has no shares
    qualify sum(current_rows) over (
        partition by model_id, as_of_date, feature_kind, feature_name
    ) > 0
)

select * from final
