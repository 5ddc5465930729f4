{#-
  Scoring features: the feature columns of fct_training_examples (no label, no split) for the
  scoring cutoff of dim_cutoffs, one row per (customer_id, product_group, as_of_date) for every
  active product group. A view over the feature marts: no copy of the customers x groups rows is
  stored, and on DuckDB a reader selecting one product group reads only that group's rows (on
  Spark the per-customer map below gathers every group's features first).
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

-- The active groups (dim_product_groups.is_active): those matching a product, plus `any`.
product_groups as (
    select distinct product_group from {{ ref('int_products_mapped_to_groups') }}
),

{%- set spark = target.type == 'spark' %}
{#- Spark (docs/spark.md): each customer's group features as one map (group -> features), joined
    on the customer, the groups crossed after the join. Crossing first and joining on (customer,
    group), as DuckDB does, makes Spark shuffle the customers x groups rows (11M at 1M customers)
    to sort-merge them; the map shuffles 1M customer rows and the sparse group rows: reading the
    view took 14-17 s instead of 20-25 s at 1M customers, identical rows. #}
{%- if spark %}
    group_maps as (
        select
            customer_id,
            as_of_date,
            map_from_entries(collect_list(struct(
                product_group,
                struct({{ group_feature_columns() | join(', ') }})
            ))) as by_group
        from group_features
        group by customer_id, as_of_date
    ),
{%- endif %}

final as (
    select
        customer_features.customer_id,
        cast(product_groups.product_group as {{ string_type() }}) as product_group,
        customer_features.as_of_date,
        -- every numeric customer feature, in the order of fct_customer_features
        {{ star_except('fct_customer_features', 'customer_features', ['customer_id', 'as_of_date', 'rfm_segment']) }},  -- noqa: RF02
        {{ group_features_filled(
            'try_element_at(group_maps.by_group, product_groups.product_group)' if spark else 'group_features'
        ) }}
    from customer_features
    {% if spark %}
        left join group_maps
            on
                customer_features.customer_id = group_maps.customer_id
                and customer_features.as_of_date = group_maps.as_of_date
        cross join product_groups
    {% else %}
        cross join product_groups
        left join group_features
            on
                customer_features.customer_id = group_features.customer_id
                and product_groups.product_group = group_features.product_group
                and customer_features.as_of_date = group_features.as_of_date
    {% endif %}
)

select * from final
