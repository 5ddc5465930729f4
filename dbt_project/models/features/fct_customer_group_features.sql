{#-
  Per product-group features as of one cutoff T, one row per (customer_id, product_group) for the
  customers with at least one order of the group before T (sparse); fct_training_examples and
  fct_scoring_features fill the others with the catalogue's fill values. Groups are those with
  products (int_products_mapped_to_groups holds active groups only, plus `any`). Built like
  fct_customer_features: one cutoff per statement, incremental by as_of_date, and at train,
  validation and test cutoffs for the customers of the training sample (and of experiments
  assigned that day) only.
-#}
{{
    config(
        materialized='propensity_by_cutoff',
        unique_key='as_of_date',
        on_schema_change='fail',
    )
}}

-- depends_on: {{ ref('int_training_sample') }}
-- depends_on: {{ ref('int_experiment_assignments') }}

with order_groups as (
    select * from {{ ref('int_order_groups_summarised') }}
    where
        order_date < {{ as_of() }}
        and {{ propensity_sample_filter('customer_id') }}
),

aggregated as (
    select
        customer_id,
        product_group,
        {%- for w in group_feature_windows() %}
            {{ money_sum('case when order_date >= ' ~ as_of(w) ~ ' then net_amount else 0 end') }} as group_spend_{{ w }}d,
            sum(case when is_purchase and order_date >= {{ as_of(w) }} then 1 else 0 end)
                as group_order_count_{{ w }}d,
        {%- endfor %}
        max(case when is_purchase then order_date end) as last_order_date
    from order_groups
    group by customer_id, product_group
),

final as (
    select
        customer_id,
        cast(product_group as {{ string_type() }}) as product_group,
        {{ as_of() }} as as_of_date,
        {%- for w in group_feature_windows() %}
            cast(group_spend_{{ w }}d as double) as group_spend_{{ w }}d,
            cast(group_order_count_{{ w }}d as integer) as group_order_count_{{ w }}d,
        {%- endfor %}
        cast({{ days_since_capped('last_order_date') }} as integer) as group_days_since_last_order
    from aggregated
)

select * from final
