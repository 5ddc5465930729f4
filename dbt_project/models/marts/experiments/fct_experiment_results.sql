{#-
  Experiment results: one row per (experiment, metric, arm), each arm against the experiment's
  control arm (dim_experiments), over fct_experiment_outcomes (docs/experiments.md).

  Metrics (y) and their CUPED covariates (x, the same quantity in the pre-period):
  conversion (purchased; x = pre-period purchase orders), orders (x = pre-period purchase
  orders), revenue and margin per customer (x = pre-period revenue; margin only when every arm
  has a discount_pct).

  Everything here is arithmetic over per-arm sums, computed where the rows are:
  - per arm: customers, total, mean, variance of y (var_samp), mean and variance of x and their
    covariance;
  - difference of means against the control with the unpooled (Welch) standard error and a
    normal 95 % interval; relative lift mean_t / mean_c - 1 with a delta-method interval;
    incremental_total = difference x treated customers (e.g. the purchases the arm caused);
  - CUPED (Deng et al. 2013): y - theta (x - mean of x over the experiment), theta pooled from
    the within-arm covariances; the adjusted difference, its interval, and the variance
    reduction 1 - (adjusted se / se)^2;
  - sample ratio: chi-square of the arm counts against the designed shares (experiments.yml, or
    equal shares), flagged at p < 0.001.
  P-values, the Holm correction over the arms and the verdict need distribution functions the
  warehouse does not have: `propensity experiment analyse` computes them from these columns
  (models_py/experiments/_analyse.py), and a test checks both against statsmodels and scipy.
-#}
{#- scipy.stats.norm.ppf(0.975) -#}
{%- set z = 1.959963984540054 -%}
{#- scipy.stats.chi2.isf(0.001, df): the sample ratio test's critical values -#}
{%- set chi_square_critical = {
    1: 10.827566, 2: 13.815511, 3: 16.266236, 4: 18.466827, 5: 20.515006, 6: 22.457744,
    7: 24.321886, 8: 26.124482, 9: 27.877165, 10: 29.588298, 11: 31.264134, 12: 32.90949,
    13: 34.528179, 14: 36.123274, 15: 37.697298, 16: 39.252355, 17: 40.790217, 18: 42.312396,
    19: 43.820196, 20: 45.314747,
} -%}

with experiments as (
    select * from {{ ref('dim_experiments') }}
    where control_arm is not null
),

outcomes as (
    select outcomes.*
    from {{ ref('fct_experiment_outcomes') }} as outcomes
    inner join experiments on outcomes.experiment_id = experiments.experiment_id
),

experiment_config as (
    select * from {{ ref('stg_raw__experiment_config') }}
),

metric_values as (
    select
        experiment_id,
        arm,
        'conversion' as metric,
        cast(purchased as double) as y,
        cast(pre_period_orders as double) as x,
        'pre_period_orders' as covariate
    from outcomes
    union all
    select
        experiment_id,
        arm,
        'orders' as metric,
        cast(orders as double) as y,
        cast(pre_period_orders as double) as x,
        'pre_period_orders' as covariate
    from outcomes
    union all
    select
        experiment_id,
        arm,
        'revenue' as metric,
        revenue as y,
        pre_period_revenue as x,
        'pre_period_revenue' as covariate
    from outcomes
    union all
    select
        outcomes.experiment_id,
        outcomes.arm,
        'margin' as metric,
        outcomes.margin as y,
        outcomes.pre_period_revenue as x,
        'pre_period_revenue' as covariate
    from outcomes
    inner join experiments on outcomes.experiment_id = experiments.experiment_id
    where experiments.has_discount
),

per_arm as (
    select
        experiment_id,
        metric,
        arm,
        min(covariate) as covariate,
        count(*) as customers,
        sum(y) as total,
        avg(y) as mean,
        coalesce(var_samp(y), 0) as variance,
        avg(x) as covariate_mean,
        coalesce(var_samp(x), 0) as covariate_variance,
        coalesce(covar_samp(y, x), 0) as covariance
    from metric_values
    group by experiment_id, metric, arm
),

-- theta = pooled within-arm covariance / pooled within-arm variance of the covariate
pooled as (
    select
        experiment_id,
        metric,
        sum(customers * covariate_mean) / sum(customers) as covariate_grand_mean,
        coalesce(
            sum((customers - 1) * covariance) / nullif(sum((customers - 1) * covariate_variance), 0), 0
        ) as cuped_theta
    from per_arm
    group by experiment_id, metric
),

adjusted as (
    select
        per_arm.*,
        pooled.covariate_grand_mean,
        pooled.cuped_theta,
        per_arm.mean - pooled.cuped_theta * (per_arm.covariate_mean - pooled.covariate_grand_mean)
            as cuped_mean,
        greatest(
            per_arm.variance - 2 * pooled.cuped_theta * per_arm.covariance
            + pooled.cuped_theta * pooled.cuped_theta * per_arm.covariate_variance,
            0
        ) as cuped_variance
    from per_arm
    inner join pooled
        on
            per_arm.experiment_id = pooled.experiment_id
            and per_arm.metric = pooled.metric
),

-- designed share of each arm: experiments.yml, else equal shares
shares as (
    select
        adjusted.experiment_id,
        adjusted.metric,
        adjusted.arm,
        adjusted.customers,
        coalesce(experiment_config.share, 1.0 / count(*) over (
            partition by adjusted.experiment_id, adjusted.metric
        )) as expected_share,
        adjusted.customers * 1.0 / sum(adjusted.customers) over (
            partition by adjusted.experiment_id, adjusted.metric
        ) as observed_share
    from adjusted
    left join experiment_config
        on
            adjusted.experiment_id = experiment_config.experiment_id
            and adjusted.arm = experiment_config.arm
),

totals as (
    select
        experiment_id,
        metric,
        sum(customers) as customers
    from shares
    group by experiment_id, metric
),

sample_ratio as (
    select
        shares.experiment_id,
        shares.metric,
        sum(
            power(shares.customers - totals.customers * shares.expected_share, 2)
            / nullif(totals.customers * shares.expected_share, 0)
        ) as srm_chi_square,
        count(*) - 1 as srm_df
    from shares
    inner join totals
        on
            shares.experiment_id = totals.experiment_id
            and shares.metric = totals.metric
    group by shares.experiment_id, shares.metric
),

chi_square_critical as (
    select
        critical.df,
        critical.critical_value
    from (
        values
        {%- for df, value in chi_square_critical.items() %}
            ({{ df }}, {{ value }}){% if not loop.last %},{% endif %}
        {%- endfor %}
    ) as critical (df, critical_value)
),

compared as (
    select
        arm.*,
        experiments.control_arm,
        arm.arm = experiments.control_arm as is_control,
        control.customers as control_customers,
        control.mean as control_mean,
        control.cuped_mean as control_cuped_mean,
        case when arm.arm <> experiments.control_arm then arm.mean - control.mean end as difference,
        case
            when arm.arm <> experiments.control_arm
                then sqrt(arm.variance / arm.customers + control.variance / control.customers)
        end as difference_se,
        case
            when arm.arm <> experiments.control_arm and control.mean <> 0
                then arm.mean / control.mean - 1
        end as relative_lift,
        -- delta method: Var(a / c) ~ Var(a) / c^2 + a^2 Var(c) / c^4
        case
            when arm.arm <> experiments.control_arm and control.mean <> 0
                then sqrt(
                    arm.variance / arm.customers / power(control.mean, 2)
                    + power(arm.mean, 2) * control.variance / control.customers / power(control.mean, 4)
                )
        end as relative_lift_se,
        case
            when arm.arm <> experiments.control_arm then arm.cuped_mean - control.cuped_mean
        end as cuped_difference,
        case
            when arm.arm <> experiments.control_arm
                then sqrt(arm.cuped_variance / arm.customers + control.cuped_variance / control.customers)
        end as cuped_se
    from adjusted as arm
    inner join experiments on arm.experiment_id = experiments.experiment_id
    inner join adjusted as control
        on
            arm.experiment_id = control.experiment_id
            and arm.metric = control.metric
            and experiments.control_arm = control.arm
),

final as (
    select
        compared.experiment_id,
        cast(compared.metric as {{ string_type() }}) as metric,
        compared.arm,
        compared.is_control,
        compared.control_arm,
        experiments.status,
        experiments.status <> 'complete' as is_interim,
        experiments.data_until,
        experiments.window_end,
        cast(compared.customers as bigint) as customers,
        shares.expected_share,
        shares.observed_share,
        compared.total,
        compared.mean,
        compared.variance,
        cast(compared.covariate as {{ string_type() }}) as covariate,
        compared.covariate_mean,
        compared.covariate_variance,
        compared.covariance,
        compared.covariate_grand_mean,
        compared.cuped_theta,
        compared.cuped_mean,
        compared.cuped_variance,
        cast(compared.control_customers as bigint) as control_customers,
        compared.control_mean,
        compared.difference,
        compared.difference_se,
        compared.difference - {{ z }} * compared.difference_se as ci_lower,
        compared.difference + {{ z }} * compared.difference_se as ci_upper,
        compared.difference / nullif(compared.difference_se, 0) as z_score,
        compared.relative_lift,
        compared.relative_lift - {{ z }} * compared.relative_lift_se as relative_lift_ci_lower,
        compared.relative_lift + {{ z }} * compared.relative_lift_se as relative_lift_ci_upper,
        compared.cuped_difference,
        compared.cuped_se,
        compared.cuped_difference - {{ z }} * compared.cuped_se as cuped_ci_lower,
        compared.cuped_difference + {{ z }} * compared.cuped_se as cuped_ci_upper,
        1 - power(compared.cuped_se / nullif(compared.difference_se, 0), 2) as variance_reduction,
        compared.cuped_se / nullif(compared.difference_se, 0) as ci_width_ratio,
        compared.difference * compared.customers as incremental_total,
        (compared.difference - {{ z }} * compared.difference_se) * compared.customers
            as incremental_ci_lower,
        (compared.difference + {{ z }} * compared.difference_se) * compared.customers
            as incremental_ci_upper,
        sample_ratio.srm_chi_square,
        cast(sample_ratio.srm_df as integer) as srm_df,
        sample_ratio.srm_chi_square > chi_square_critical.critical_value as is_sample_ratio_mismatch
    from compared
    inner join experiments on compared.experiment_id = experiments.experiment_id
    inner join shares
        on
            compared.experiment_id = shares.experiment_id
            and compared.metric = shares.metric
            and compared.arm = shares.arm
    inner join sample_ratio
        on
            compared.experiment_id = sample_ratio.experiment_id
            and compared.metric = sample_ratio.metric
    left join chi_square_critical on sample_ratio.srm_df = chi_square_critical.df
)

select * from final
