{#-
  Training examples of one training cutoff T: one row per (customer_id, product_group) for every
  customer created before T and every active product group, with the temporal split of dim_cutoffs
  and the label: 1 when the customer places a purchase order (a line with quantity > 0) containing
  a product of the group with ordered_at in [T, T + horizon_days); return-only orders never count.
  Features: every numeric column of fct_customer_features (rfm_segment, a name, is left out) and
  the group features, filled for customers without orders of the group.
  Rebuilt whole each run (splits follow dim_cutoffs), one training cutoff per statement. Filters
  on as_of_date are literals, so the feature marts (stored one cutoff after another) are read
  through their zone maps.
-#}
{{
    config(
        materialized='propensity_by_cutoff',
        cutoff_roles=['train', 'validation', 'test'],
        rebuild=true,
        unique_key='as_of_date',
    )
}}

with cutoffs as (
    select * from {{ ref('dim_cutoffs') }}
    where
        cutoff_role in ('train', 'validation', 'test')
        and as_of_date = {{ as_of() }}
),

customer_features as (
    select * from {{ ref('fct_customer_features') }}
    where as_of_date = {{ as_of() }}
),

group_features as (
    select * from {{ ref('fct_customer_group_features') }}
    where as_of_date = {{ as_of() }}
),

-- The active groups (dim_product_groups.is_active): those matching a product, plus `any`.
product_groups as (
    select distinct product_group from {{ ref('int_products_mapped_to_groups') }}
),

order_groups as (
    select * from {{ ref('int_order_groups_summarised') }}
    where is_purchase and order_date >= {{ as_of() }}
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
        cast(product_groups.product_group as {{ string_type() }}) as product_group,
        customer_features.as_of_date,
        cast(cutoffs.cutoff_role as {{ string_type() }}) as split,
        cast(case when labels.customer_id is not null then 1 else 0 end as integer) as label,
        -- every numeric customer feature, in the order of fct_customer_features
        {{ star_except('fct_customer_features', 'customer_features', ['customer_id', 'as_of_date', 'rfm_segment']) }},  -- noqa: RF02
        {{ group_features_filled('group_features') }}
    from customer_features
    inner join cutoffs on customer_features.as_of_date = cutoffs.as_of_date
    cross join product_groups
    left join group_features
        on
            customer_features.customer_id = group_features.customer_id
            and product_groups.product_group = group_features.product_group
    left join labels
        on
            customer_features.customer_id = labels.customer_id
            and product_groups.product_group = labels.product_group
)

select * from final
