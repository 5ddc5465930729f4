{#-
  Customer features, one row per (customer_id, as_of_date), for every cutoff in dim_cutoffs
  (training cutoffs and the scoring cutoff) and every customer created before the cutoff.
  Incremental by as_of_date (delete+insert): each run recomputes the cutoffs currently in
  dim_cutoffs and replaces them; rows of older cutoffs (earlier scoring dates) stay, so features
  of past scores remain available for monitoring. Each cutoff is its own aggregate over the
  order-level intermediate tables (union all), never one join of events to all cutoffs; the
  materialization propensity_by_cutoff runs one cutoff per statement (delete + insert).
-#}
{{
    config(
        materialized='propensity_by_cutoff',
        cutoff_sql='customer_features_for_cutoff',
        unique_key='as_of_date',
        on_schema_change='fail',
    )
}}
-- depends_on: {{ ref('dim_cutoffs') }}
{%- set cutoffs = propensity_cutoffs() %}

{{ propensity_union_over_cutoffs(cutoffs, customer_features_for_cutoff) }}
