{#-
  Training examples of one training cutoff T: a sample of the (customer_id, product_group) pairs
  of every customer created before T and every active product group, with the temporal split of
  dim_cutoffs, the label and a sample_weight. Label: 1 when the customer places a purchase order
  (a line with quantity > 0) containing a product of the group with ordered_at in
  [T, T + horizon_days); return-only orders never count.
  Labels come first (sparse, straight from the orders), then the sample per (group, cutoff)
  (macros/features/training_sample.sql: train cutoffs keep positives up to a cap and sampled
  negatives, validation and test cutoffs a uniform sample), then the features of the sampled
  rows only: every numeric column of fct_customer_features (rfm_segment, a name, is left out)
  and the group features, filled for customers without orders of the group. sample_weight
  restores the population: per stratum, its rows in the population / its rows in the sample.
  Rebuilt whole each run (splits follow dim_cutoffs), one training cutoff per statement. Filters
  on as_of_date are literals, so the feature marts (stored one cutoff after another) are read
  through their zone maps.
-#}
{%- set positives_per_cutoff = propensity_sample_size('training_sample_positives') -%}
{%- set negatives_per_cutoff = propensity_sample_size('training_sample_negatives') -%}
{%- set evaluation_rows = propensity_sample_size('evaluation_sample_rows') -%}
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
        order_groups.product_group
    from order_groups
    inner join cutoffs
        on
            order_groups.order_date >= cutoffs.as_of_date
            and order_groups.order_date < cutoffs.label_window_end
),

-- One uniform number per customer of the population (customers created before T).
units as (
    select
        customer_id,
        {{ propensity_sample_unit('customer_id', as_of()) }} as sample_unit
    from customer_features
),

positives as (
    select
        labels.customer_id,
        labels.product_group,
        units.sample_unit
    from labels
    inner join units on labels.customer_id = units.customer_id
),

population as (
    select count(*) as customers from units
),

positive_counts as (
    select
        product_group,
        count(*) as positives
    from positives
    group by product_group
),

-- Per product group: its population, positives and the sampling rate of each label.
strata as (
    select
        product_groups.product_group,
        cutoffs.cutoff_role,
        population.customers,
        coalesce(positive_counts.positives, 0) as positives,
        case
            when cutoffs.cutoff_role = 'train'
                then {{ propensity_sample_rate(positives_per_cutoff, 'coalesce(positive_counts.positives, 0)') }}
            else {{ propensity_sample_rate(evaluation_rows, 'population.customers') }}
        end as positive_rate,
        case
            when cutoffs.cutoff_role = 'train'
                then {{ propensity_sample_rate(
                    negatives_per_cutoff,
                    'population.customers - coalesce(positive_counts.positives, 0)'
                ) }}
            else {{ propensity_sample_rate(evaluation_rows, 'population.customers') }}
        end as negative_rate
    from product_groups
    cross join cutoffs
    cross join population
    left join positive_counts
        on product_groups.product_group = positive_counts.product_group
),

sampled_positives as (
    select
        positives.customer_id,
        strata.product_group,
        1 as label
    from positives
    inner join strata on positives.product_group = strata.product_group
    where positives.sample_unit < strata.positive_rate
),

sampled_negatives as (
    select
        units.customer_id,
        strata.product_group,
        0 as label
    from units
    inner join strata on units.sample_unit < strata.negative_rate
    left join positives
        on
            units.customer_id = positives.customer_id
            and strata.product_group = positives.product_group
    where positives.customer_id is null
),

sampled as (
    select * from sampled_positives
    union all
    select * from sampled_negatives
),

-- Post-stratified weights: a stratum's population over its sampled rows.
weighted as (
    select
        sampled.customer_id,
        sampled.product_group,
        sampled.label,
        cast(
            case
                when strata.cutoff_role <> 'train' then strata.customers
                when sampled.label = 1 then strata.positives
                else strata.customers - strata.positives
            end as double
        ) / count(*) over (
            partition by
                sampled.product_group,
                case when strata.cutoff_role = 'train' then sampled.label end
        ) as sample_weight
    from sampled
    inner join strata on sampled.product_group = strata.product_group
),

final as (
    select
        customer_features.customer_id,
        cast(weighted.product_group as {{ string_type() }}) as product_group,
        customer_features.as_of_date,
        cast(cutoffs.cutoff_role as {{ string_type() }}) as split,
        cast(weighted.label as integer) as label,
        weighted.sample_weight,
        -- every numeric customer feature, in the order of fct_customer_features
        {{ star_except('fct_customer_features', 'customer_features', ['customer_id', 'as_of_date', 'rfm_segment']) }},  -- noqa: RF02
        {{ group_features_filled('group_features') }}
    from weighted
    inner join customer_features on weighted.customer_id = customer_features.customer_id
    inner join cutoffs on customer_features.as_of_date = cutoffs.as_of_date
    left join group_features
        on
            weighted.customer_id = group_features.customer_id
            and weighted.product_group = group_features.product_group
)

select * from final
