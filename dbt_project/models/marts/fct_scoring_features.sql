{#-
  Scoring features: the feature columns of fct_training_examples (no label, no split) for the
  scoring cutoff of dim_cutoffs, one row per (customer_id, product_group, as_of_date) for every
  active product group. A view over the feature marts: no copy of 1M x groups rows is stored, and a
  reader selecting one product group reads only that group's rows.
-#}
{{ config(materialized='view') }}

with cutoffs as (
    select * from {{ ref('dim_cutoffs') }}
    where cutoff_role = 'scoring'
),

customer_features as (
    select * from {{ ref('fct_customer_features') }}
    where as_of_date in (select cutoffs.as_of_date from cutoffs)
),

group_features as (
    select * from {{ ref('fct_customer_group_features') }}
    where as_of_date in (select cutoffs.as_of_date from cutoffs)
),

product_groups as (
    {#- The active groups (dim_product_groups.is_active): those matching a product, plus `any`. #}
    select distinct product_group from {{ ref('int_products_mapped_to_groups') }}
),

final as (
    select
        customer_features.customer_id,
        cast(product_groups.product_group as varchar) as product_group,
        customer_features.as_of_date,
        {{ propensity_example_feature_columns() }}
    from customer_features
    {{ propensity_group_features_join() }}
)

select * from final
