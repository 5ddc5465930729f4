{#-
  Experiment examples: one row per (experiment_id, customer_id) of int_experiment_assignments
  (raw.treatments and `propensity experiment assign`) whose outcome window is fully observed,
  for uplift models (docs/uplift.md).

  - Features: those of the `any` product group as fct_training_examples has them, as of the
    assignment day T = cast(assigned_at as date) (a cutoff of dim_cutoffs): events strictly
    before T, so nothing at or after the assignment (an assignment at 14:00 loses the morning's
    events rather than seeing any after it). Customers without a feature row at T (created on or
    after T) are left out.
  - Outcomes: purchase orders (a line with quantity > 0) with ordered_at in
    [assigned_at, assigned_at + horizon_days): purchased (0/1), orders, revenue (what was paid
    for the purchase lines; returns are left out, as the label leaves them out).
  - Money, when the arm's discount_pct is known (optional raw column): the list value
    revenue / (1 - d) of what was bought, the discount cost list value - revenue and the margin
    list value x offer_margin_rate - discount cost (dbt var; the gross margin as a share of the
    list price). Without discount_pct they are null.
  Only assignments whose window [T, T + horizon_days) ends on or before the scoring cutoff are
  here.
-#}
{%- set horizon = propensity_horizon_days() -%}
{%- set margin_rate = var('offer_margin_rate') -%}
{%- if margin_rate is none or margin_rate is boolean or (margin_rate | string) | float(-1) < 0
    or (margin_rate | string) | float(-1) > 1 -%}
    {{ exceptions.raise_compiler_error(
        "dbt var offer_margin_rate must be a number in [0, 1] (the gross margin as a share of the "
        ~ "list price), got " ~ (margin_rate | string) ~ ".") }}
{%- endif %}

with cutoffs as (
    select * from {{ ref('dim_cutoffs') }}
),

scoring as (
    select as_of_date from cutoffs
    where cutoff_role = 'scoring'
),

treatments as (
    select
        treatments.experiment_id,
        treatments.customer_id,
        treatments.arm,
        treatments.discount_pct,
        treatments.assigned_at,
        cast(treatments.assigned_at as date) as as_of_date,
        treatments.assigned_at + to_days({{ horizon }}) as outcome_window_end
    from {{ ref('int_experiment_assignments') }} as treatments
    inner join cutoffs on cast(treatments.assigned_at as date) = cutoffs.as_of_date
    where
        {{ dbt.dateadd('day', horizon, 'cast(treatments.assigned_at as date)') }}
        <= (select scoring.as_of_date from scoring)
),

customer_features as (
    select * from {{ ref('fct_customer_features') }}
    where as_of_date in (select treatments.as_of_date from treatments)
),

group_features as (
    select * from {{ ref('fct_customer_group_features') }}
    where
        product_group = 'any'
        and as_of_date in (select treatments.as_of_date from treatments)
),

purchases as (
    select * from {{ ref('int_orders_summarised') }}
    where
        is_purchase
        and order_date >= (select min(treatments.as_of_date) from treatments)
),

outcomes as (
    select
        treatments.experiment_id,
        treatments.customer_id,
        count(*) as orders,
        -- what was paid for the purchase lines: the order's net amount plus its returned lines
        round(sum(purchases.net_amount + purchases.return_amount), 2) as revenue
    from treatments
    inner join purchases
        on
            treatments.customer_id = purchases.customer_id
            and treatments.assigned_at <= purchases.ordered_at
            and treatments.outcome_window_end > purchases.ordered_at
    group by treatments.experiment_id, treatments.customer_id
),

with_outcomes as (
    select
        treatments.*,
        coalesce(outcomes.orders, 0) as orders,
        cast(coalesce(outcomes.revenue, 0) as double) as revenue
    from treatments
    left join outcomes
        on
            treatments.experiment_id = outcomes.experiment_id
            and treatments.customer_id = outcomes.customer_id
),

final as (
    select
        with_outcomes.experiment_id,
        with_outcomes.customer_id,
        with_outcomes.arm,
        with_outcomes.discount_pct,
        with_outcomes.assigned_at,
        with_outcomes.as_of_date,
        with_outcomes.outcome_window_end,
        cast(case when with_outcomes.orders > 0 then 1 else 0 end as integer) as purchased,
        cast(with_outcomes.orders as integer) as orders,
        cast(round(with_outcomes.revenue, 2) as double) as revenue,
        cast(round(
            with_outcomes.revenue / (1 - with_outcomes.discount_pct / 100) - with_outcomes.revenue, 2
        ) as double) as discount_cost,
        cast(round(
            with_outcomes.revenue * ({{ margin_rate }} - with_outcomes.discount_pct / 100)
            / (1 - with_outcomes.discount_pct / 100), 2
        ) as double) as margin,
        -- every numeric customer feature, in the order of fct_customer_features
        customer_features.* exclude (customer_id, as_of_date, rfm_segment),  -- noqa: RF02
        {{ group_features_filled('group_features') }}
    from with_outcomes
    inner join customer_features
        on
            with_outcomes.customer_id = customer_features.customer_id
            and with_outcomes.as_of_date = customer_features.as_of_date
    left join group_features
        on
            with_outcomes.customer_id = group_features.customer_id
            and with_outcomes.as_of_date = group_features.as_of_date
)

select * from final
