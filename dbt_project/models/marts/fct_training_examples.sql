{#-
  Training examples: one row per (customer_id, product_group, as_of_date) for every customer
  created before the cutoff, every active product group and every training cutoff in dim_cutoffs
  (roles train / validation / test, the split column). label = 1 when the customer places a
  purchase order (at least one line with quantity > 0) containing a product of the group with
  ordered_at in [T, T + horizon_days); return-only orders never count.
  Features: every numeric column of fct_customer_features and the group features (filled for
  customers without orders of the group). Rebuilt whole each run so splits follow dim_cutoffs,
  one training cutoff per statement (materialization propensity_by_cutoff, rebuild: true).
-#}
{{
    config(
        materialized='propensity_by_cutoff',
        cutoff_sql='training_examples_for_cutoff',
        cutoff_roles=['train', 'validation', 'test'],
        rebuild=true,
        unique_key='as_of_date',
    )
}}

{{ training_examples_for_cutoff() }}
