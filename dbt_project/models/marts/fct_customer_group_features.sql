{#-
  Per product-group features, one row per (customer_id, product_group, as_of_date) for the
  customers with at least one order of the group before the cutoff (sparse); consumers
  (fct_training_examples, fct_scoring_features) fill the others with documented values.
  Same cutoffs and incremental behaviour as fct_customer_features. Groups are those with products
  (int_products_mapped_to_groups holds active groups only, plus `any`).
-#}
{{
    config(
        materialized='propensity_by_cutoff',
        cutoff_sql='group_features_for_cutoff',
        unique_key='as_of_date',
        on_schema_change='fail',
    )
}}
-- depends_on: {{ ref('dim_cutoffs') }}
{%- set cutoffs = propensity_cutoffs() %}

{{ propensity_union_over_cutoffs(cutoffs, group_features_for_cutoff) }}
