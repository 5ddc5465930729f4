{#-
  Training examples: one row per (customer_id, product_group, as_of_date) for every customer
  created before the cutoff, every active product group and every training cutoff in dim_cutoffs
  (roles train / validation / test, the split column). label = 1 when the customer places a
  purchase order (at least one line with quantity > 0) containing a product of the group with
  ordered_at in [T, T + horizon_days); return-only orders never count.
  Features: every numeric column of fct_customer_features and the group features (filled for
  customers without orders of the group). Rebuilt whole each run so splits follow dim_cutoffs.
-#}
{{ config(materialized='table') }}

with cutoffs as (
    select * from {{ ref('dim_cutoffs') }}
    where cutoff_role in ('train', 'validation', 'test')
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

order_groups as (
    select * from {{ ref('int_order_groups_summarised') }}
    where is_purchase
),

labels as (
    select distinct
        order_groups.customer_id,
        order_groups.product_group,
        cutoffs.as_of_date
    from order_groups
    inner join cutoffs
        on
            order_groups.order_date >= cutoffs.as_of_date
            and order_groups.order_date < cutoffs.label_window_end
),

final as (
    select
        customer_features.customer_id,
        cast(product_groups.product_group as varchar) as product_group,
        customer_features.as_of_date,
        cast(cutoffs.cutoff_role as varchar) as split,
        cast(case when labels.customer_id is not null then 1 else 0 end as integer) as label,
        {{ propensity_example_feature_columns() }}
    from customer_features
    inner join cutoffs on customer_features.as_of_date = cutoffs.as_of_date
    {{ propensity_group_features_join() }}
    left join labels
        on
            customer_features.customer_id = labels.customer_id
            and product_groups.product_group = labels.product_group
            and customer_features.as_of_date = labels.as_of_date
)

select * from final
