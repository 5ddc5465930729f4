{#-
  Training examples of every training cutoff (cutoff none: the model's SQL) or of one cutoff (the
  same select restricted to as_of_date = cutoff with literal bounds, so the feature marts, stored
  one cutoff after another, are read through their zone maps). fct_training_examples is built one
  cutoff per statement (materialization propensity_by_cutoff, rebuild: true).
-#}
{% macro training_examples_for_cutoff(cutoff=none) %}
{%- if cutoff is not none -%}
    {%- set t = propensity_date_literal(cutoff) -%}
    {%- set in_cutoffs = '= ' ~ t -%}
{%- else -%}
    {%- set in_cutoffs = 'in (select cutoffs.as_of_date from cutoffs)' -%}
{%- endif -%}
with cutoffs as (
    select * from {{ ref('dim_cutoffs') }}
    where
        cutoff_role in ('train', 'validation', 'test')
        {%- if cutoff is not none %}
        and as_of_date = {{ t }}
        {%- endif %}
),

customer_features as (
    select * from {{ ref('fct_customer_features') }}
    where as_of_date {{ in_cutoffs }}
),

group_features as (
    select * from {{ ref('fct_customer_group_features') }}
    where as_of_date {{ in_cutoffs }}
),

product_groups as (
    {#- The active groups (dim_product_groups.is_active): those matching a product, plus `any`. #}
    select distinct product_group from {{ ref('int_products_mapped_to_groups') }}
),

order_groups as (
    select * from {{ ref('int_order_groups_summarised') }}
    where
        is_purchase
        {%- if cutoff is not none %}
        and order_date >= {{ t }}
        {%- endif %}
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
{% endmacro %}
