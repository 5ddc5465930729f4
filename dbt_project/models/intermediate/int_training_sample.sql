{#-
  The training sample of one training cutoff T, before any feature: which (customer_id,
  product_group) pairs fct_training_examples keeps, with the temporal split, the label and the
  sample_weight. Labels come first (sparse, straight from the orders), then the sample per (group,
  cutoff) (macros/features/training_sample.sql: train cutoffs keep positives up to a cap and
  sampled negatives, validation and test cutoffs a uniform sample).
  Built ahead of the feature marts so they compute the features of a training cutoff for the
  sampled customers only (plus the customers an experiment assigned that day); the population
  (customers created before T) comes from the customers table, not from the features.
  Label: 1 when the customer places a purchase order (a line with quantity > 0) containing a
  product of the group with ordered_at in [T, T + horizon_days); return-only orders never count.
  sample_weight restores the population: per stratum, its rows in the population / its rows in
  the sample. One training cutoff per statement; rebuilt whole by a run that builds training
  cutoffs (splits follow dim_cutoffs), left as stored by one that does not (var
  feature_cutoff_roles: [scoring]); the daily selector leaves it out too.
-#}
{%- set roles = propensity_run_training_roles() -%}
{%- set positives_per_cutoff = propensity_sample_size('training_sample_positives') -%}
{%- set negatives_per_cutoff = propensity_sample_size('training_sample_negatives') -%}
{%- set evaluation_rows = propensity_sample_size('evaluation_sample_rows') -%}
{{
    config(
        materialized='propensity_by_cutoff',
        cutoff_roles=roles,
        rebuild=roles | length > 0,
        unique_key='as_of_date',
        on_schema_change='fail',
    )
}}

with cutoffs as (
    select * from {{ ref('dim_cutoffs') }}
    where
        cutoff_role in ('train', 'validation', 'test')
        and as_of_date = {{ as_of() }}
),

-- The population: customers created before T (the rows fct_customer_features has at T).
customers as (
    select customer_id from {{ ref('stg_raw__customers') }}
    where created_at < cast({{ as_of() }} as timestamp)
),

-- The active groups (dim_product_groups.is_active): those matching a product, plus `any`.
product_groups as (
    select distinct product_group from {{ ref('int_products_mapped_to_groups') }}
),

-- The label window as literals too (dim_cutoffs: label_window_end = T + horizon_days), so the
-- scan skips the orders after it instead of joining them away.
order_groups as (
    select * from {{ ref('int_order_groups_summarised') }}
    where
        is_purchase
        and order_date >= {{ as_of() }}
        and order_date < {{ as_of(-propensity_horizon_days()) }}
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

-- One uniform number per customer of the population. Materialized: the positives and the
-- negatives both read it, and an inlined CTE would hash every customer twice.
units as {{ cte_hint('materialized') }}(
    select
        customer_id,
        {{ propensity_sample_unit('customer_id', as_of()) }} as sample_unit
    from customers
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
        strata.cutoff_role,
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
        cast(customer_id as bigint) as customer_id,
        cast(product_group as {{ string_type() }}) as product_group,
        {{ as_of() }} as as_of_date,
        cast(cutoff_role as {{ string_type() }}) as split,
        cast(label as integer) as label,
        sample_weight
    from weighted
)

select * from final
