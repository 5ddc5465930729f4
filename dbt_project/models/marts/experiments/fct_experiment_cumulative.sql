{#-
  Cumulative results over time: one row per (experiment, arm, day d = 1 .. window_days), the
  conversion and revenue per customer of the first d days after each customer's assignment
  [assigned_at, assigned_at + d days), with the difference against the control and its 95 %
  interval (as fct_experiment_results, without CUPED). Day d holds the customers whose first d
  days are observed by the scoring cutoff, so a running experiment's curve stops where its data
  does. Reading a curve: the interval narrows as days accumulate; stopping the first day it
  excludes 0 inflates false positives (peeking): decide on the window in advance.

  Cost: one row per purchaser and day for the revenue variance (customers without a purchase add
  0); conversions and counts are aggregated per assignment time first.
-#}
{%- set z = 1.959963984540054 -%}

with experiments as (
    select * from {{ ref('dim_experiments') }}
    where control_arm is not null
),

outcomes as (
    select * from {{ ref('fct_experiment_outcomes') }}
),

days as (
    select
        experiment_id,
        control_arm,
        data_until,
        unnest(range(1, window_days + 1)) as day
    from experiments
),

-- customers per assignment time, and when their first purchase fell
cohorts as (
    select
        experiment_id,
        arm,
        assigned_at,
        first_purchase_day,
        count(*) as customers
    from outcomes
    group by experiment_id, arm, assigned_at, first_purchase_day
),

counts as (
    select
        days.experiment_id,
        cohorts.arm,
        days.day,
        sum(cohorts.customers) as customers,
        coalesce(sum(cohorts.customers) filter (where cohorts.first_purchase_day < days.day), 0)
            as converted
    from days
    inner join cohorts
        on
            days.experiment_id = cohorts.experiment_id
            and {{ dbt.dateadd('day', 'days.day', 'cohorts.assigned_at') }} <= days.data_until
    group by days.experiment_id, cohorts.arm, days.day
),

purchases as (
    select
        outcomes.experiment_id,
        outcomes.customer_id,
        outcomes.arm,
        outcomes.assigned_at,
        floor({{ dbt.datediff('outcomes.assigned_at', 'orders.ordered_at', 'second') }} / 86400) as purchase_day,
        orders.net_amount + orders.return_amount as paid
    from outcomes
    inner join {{ ref('int_orders_summarised') }} as orders
        on
            outcomes.customer_id = orders.customer_id
            and orders.is_purchase
            and outcomes.assigned_at <= orders.ordered_at
            and outcomes.observed_until > orders.ordered_at
),

-- revenue of each purchaser by the end of day d (for the sums of squares)
purchaser_days as (
    select
        days.experiment_id,
        purchases.arm,
        days.day,
        purchases.customer_id,
        sum(purchases.paid) as revenue
    from days
    inner join purchases
        on
            days.experiment_id = purchases.experiment_id
            and days.day > purchases.purchase_day
            and days.data_until >= {{ dbt.dateadd('day', 'days.day', 'purchases.assigned_at') }}
    group by days.experiment_id, purchases.arm, days.day, purchases.customer_id
),

revenue as (
    select
        experiment_id,
        arm,
        day,
        sum(revenue) as revenue_total,
        sum(revenue * revenue) as revenue_sum_of_squares
    from purchaser_days
    group by experiment_id, arm, day
),

per_arm as (
    select
        counts.experiment_id,
        counts.arm,
        counts.day,
        counts.customers,
        counts.converted,
        counts.converted * 1.0 / counts.customers as conversion,
        -- variance of a 0/1 outcome with the n - 1 denominator, as var_samp
        case
            when counts.customers > 1
                then
                    counts.converted * (counts.customers - counts.converted) * 1.0
                    / (counts.customers * (counts.customers - 1))
            else 0
        end as conversion_variance,
        cast(coalesce(revenue.revenue_total, 0) as double) / counts.customers as revenue_per_customer,
        case
            when counts.customers > 1
                then greatest(
                    (
                        coalesce(revenue.revenue_sum_of_squares, 0)
                        - power(coalesce(revenue.revenue_total, 0), 2) / counts.customers
                    ) / (counts.customers - 1),
                    0
                )
            else 0
        end as revenue_variance
    from counts
    left join revenue
        on
            counts.experiment_id = revenue.experiment_id
            and counts.arm = revenue.arm
            and counts.day = revenue.day
),

final as (
    select
        arm.experiment_id,
        arm.arm,
        cast(arm.day as integer) as day,
        arm.arm = experiments.control_arm as is_control,
        cast(arm.customers as bigint) as customers,
        cast(arm.converted as bigint) as converted,
        arm.conversion,
        cast(round(arm.revenue_per_customer, 4) as double) as revenue_per_customer,
        cast(control.customers as bigint) as control_customers,
        control.conversion as control_conversion,
        cast(round(control.revenue_per_customer, 4) as double) as control_revenue_per_customer,
        arm.conversion - control.conversion as conversion_difference,
        arm.conversion - control.conversion
        - {{ z }} * sqrt(arm.conversion_variance / arm.customers + control.conversion_variance / control.customers)
            as conversion_ci_lower,
        arm.conversion - control.conversion
        + {{ z }} * sqrt(arm.conversion_variance / arm.customers + control.conversion_variance / control.customers)
            as conversion_ci_upper,
        arm.revenue_per_customer - control.revenue_per_customer as revenue_difference,
        arm.revenue_per_customer - control.revenue_per_customer
        - {{ z }} * sqrt(arm.revenue_variance / arm.customers + control.revenue_variance / control.customers)
            as revenue_ci_lower,
        arm.revenue_per_customer - control.revenue_per_customer
        + {{ z }} * sqrt(arm.revenue_variance / arm.customers + control.revenue_variance / control.customers)
            as revenue_ci_upper
    from per_arm as arm
    inner join experiments on arm.experiment_id = experiments.experiment_id
    inner join per_arm as control
        on
            arm.experiment_id = control.experiment_id
            and arm.day = control.day
            and experiments.control_arm = control.arm
)

select * from final
