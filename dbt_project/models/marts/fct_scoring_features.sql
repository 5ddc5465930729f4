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
        {%- for name, data_type in customer_feature_columns() %}
            customer_features.{{ name }},
        {%- endfor %}
        {%- for name, data_type, fill in group_feature_columns() %}
            cast(coalesce(group_features.{{ name }}, {{ fill }}) as {{ data_type }}) as {{ name }}
            {%- if not loop.last %},{% endif %}
        {%- endfor %}
    from customer_features
    cross join product_groups
    left join group_features
        on
            customer_features.customer_id = group_features.customer_id
            and product_groups.product_group = group_features.product_group
            and customer_features.as_of_date = group_features.as_of_date
)

select * from final
