{#-
  Outcomes per (experiment, customer) for the experiment marts (docs/experiments.md): every
  assignment made before the scoring cutoff T, with what happened in its outcome window
  [assigned_at, assigned_at + window_days) as far as T (running experiments: interim, flagged by
  is_window_complete), and the same customer's purchases in the pre-period
  [assigned_at - experiment_pre_period_days, assigned_at), the CUPED covariates.

  Outcomes are those of fct_experiment_examples (which holds only finished windows of
  horizon_days, for uplift models): purchase orders (a line with quantity > 0), revenue = what
  was paid for the purchase lines (returns left out), margin from the arm's discount_pct
  (list value x offer_margin_rate - discount cost; null without a discount). A test checks that
  both marts agree where both hold a customer.
-#}
{%- set margin_rate = var('offer_margin_rate') -%}
{%- set pre_days = propensity_int_var('experiment_pre_period_days', 1) -%}

with experiments as (
    select * from {{ ref('dim_experiments') }}
),

assignments as (
    select
        assignments.experiment_id,
        assignments.customer_id,
        assignments.arm,
        assignments.arm = experiments.control_arm as is_control,
        assignments.discount_pct,
        assignments.assigned_at,
        {{ dbt.dateadd('day', 'experiments.window_days', 'assignments.assigned_at') }} as window_end,
        experiments.data_until
    from {{ ref('int_experiment_assignments') }} as assignments
    inner join experiments on assignments.experiment_id = experiments.experiment_id
    where assignments.assigned_at < experiments.data_until
),

windows as (
    select
        *,
        least(window_end, data_until) as observed_until,
        window_end <= data_until as is_window_complete
    from assignments
),

purchases as (
    select
        customer_id,
        ordered_at,
        -- what was paid for the purchase lines: the order's net amount plus its returned lines
        net_amount + return_amount as paid
    from {{ ref('int_orders_summarised') }}
    where is_purchase
),

in_window as (
    select
        windows.experiment_id,
        windows.customer_id,
        count(*) as orders,
        round(sum(purchases.paid), 2) as revenue,
        min(purchases.ordered_at) as first_purchase_at
    from windows
    inner join purchases
        on
            windows.customer_id = purchases.customer_id
            and windows.assigned_at <= purchases.ordered_at
            and windows.observed_until > purchases.ordered_at
    group by windows.experiment_id, windows.customer_id
),

pre_period as (
    select
        windows.experiment_id,
        windows.customer_id,
        count(*) as pre_period_orders,
        round(sum(purchases.paid), 2) as pre_period_revenue
    from windows
    inner join purchases
        on
            windows.customer_id = purchases.customer_id
            and windows.assigned_at > purchases.ordered_at
            and {{ dbt.dateadd('day', -pre_days, 'windows.assigned_at') }} <= purchases.ordered_at
    group by windows.experiment_id, windows.customer_id
),

joined as (
    select
        windows.*,
        coalesce(in_window.orders, 0) as orders,
        cast(coalesce(in_window.revenue, 0) as double) as revenue,
        in_window.first_purchase_at,
        coalesce(pre_period.pre_period_orders, 0) as pre_period_orders,
        cast(coalesce(pre_period.pre_period_revenue, 0) as double) as pre_period_revenue
    from windows
    left join in_window
        on
            windows.experiment_id = in_window.experiment_id
            and windows.customer_id = in_window.customer_id
    left join pre_period
        on
            windows.experiment_id = pre_period.experiment_id
            and windows.customer_id = pre_period.customer_id
),

final as (
    select
        experiment_id,
        customer_id,
        arm,
        is_control,
        discount_pct,
        assigned_at,
        window_end,
        observed_until,
        is_window_complete,
        cast(case when orders > 0 then 1 else 0 end as integer) as purchased,
        cast(orders as integer) as orders,
        cast(round(revenue, 2) as double) as revenue,
        cast(round(
            revenue * ({{ margin_rate }} - discount_pct / 100) / (1 - discount_pct / 100), 2
        ) as double) as margin,
        -- whole days from the assignment to the first purchase in the window (0 = the first day)
        cast(floor({{ dbt.datediff('assigned_at', 'first_purchase_at', 'second') }} / 86400) as integer)
            as first_purchase_day,
        cast(pre_period_orders as integer) as pre_period_orders,
        cast(round(pre_period_revenue, 2) as double) as pre_period_revenue
    from joined
)

select * from final
