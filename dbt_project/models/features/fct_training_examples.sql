{#-
  Training examples of one training cutoff T: the rows of the training sample
  (int_training_sample: which (customer_id, product_group) pairs, the temporal split of
  dim_cutoffs, the label and the sample_weight that restores the population; labels and sample
  come first, before any feature), then the features of the sampled rows: every numeric column of
  fct_customer_features (rfm_segment, a name, is left out) and the group features, filled for
  customers without orders of the group. The feature marts compute a training cutoff for the
  sampled customers only.
  Rebuilt whole each run (splits follow dim_cutoffs). A sampled training set is written a few
  cutoffs per statement (a union all of each cutoff's select; 3 with the packaged sizes: 4.3 s
  against 6.0 s at 1M customers, the 80 columns write faster in larger statements); with a
  sample size null, one training cutoff per statement (macro
  propensity_training_cutoffs_per_statement). Filters
  on as_of_date are literals, so the feature marts (stored one cutoff after another) are read
  through their zone maps.
-#}
{{
    config(
        materialized='propensity_by_cutoff',
        cutoff_roles=['train', 'validation', 'test'],
        rebuild=true,
        unique_key='as_of_date',
        cutoffs_per_statement=propensity_training_cutoffs_per_statement(),
    )
}}

with sampled as (
    select * from {{ ref('int_training_sample') }}
    where as_of_date = {{ as_of() }}
),

customer_features as (
    select * from {{ ref('fct_customer_features') }}
    where as_of_date = {{ as_of() }}
),

group_features as (
    select * from {{ ref('fct_customer_group_features') }}
    where as_of_date = {{ as_of() }}
),

final as (
    select
        customer_features.customer_id,
        sampled.product_group,
        customer_features.as_of_date,
        sampled.split,
        sampled.label,
        sampled.sample_weight,
        -- every numeric customer feature, in the order of fct_customer_features
        {{ star_except('fct_customer_features', 'customer_features', ['customer_id', 'as_of_date', 'rfm_segment']) }},  -- noqa: RF02
        {{ group_features_filled('group_features') }}
    from sampled
    inner join customer_features on sampled.customer_id = customer_features.customer_id
    left join group_features
        on
            sampled.customer_id = group_features.customer_id
            and sampled.product_group = group_features.product_group
)

select * from final
