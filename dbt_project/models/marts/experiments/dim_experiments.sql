{#-
  One row per experiment of int_experiment_assignments (raw.treatments and `propensity
  experiment assign`), with the settings its analysis uses (docs/experiments.md):

  - from experiments.yml (stg_raw__experiment_config) when the experiment is configured:
    control arm, outcome window, primary metric, assignment kind, audience;
  - otherwise inferred: the control is the only arm whose discount_pct is 0, else the only arm
    with a usual control name (control, holdout, no_email, no_offer, none, baseline, 0), else
    none (the experiment gets no results and the test on control_arm warns); the window is dbt
    var horizon_days; the primary metric is conversion.

  status at the scoring cutoff T: not_started (assigned on or after T: nothing observed yet),
  running (the last customer's window [assigned_at, assigned_at + window_days) ends after T:
  the figures are interim) or complete.
-#}
{%- set horizon = propensity_horizon_days() -%}
{%- set control_names = ['control', 'holdout', 'no_email', 'no_offer', 'none', 'baseline', '0'] -%}

with assignments as (
    select * from {{ ref('int_experiment_assignments') }}
),

experiment_config as (
    select * from {{ ref('stg_raw__experiment_config') }}
),

scoring as (
    select as_of_date from {{ ref('dim_cutoffs') }}
    where cutoff_role = 'scoring'
),

arms as (
    select
        experiment_id,
        arm,
        count(*) as customers,
        min(discount_pct) as discount_pct
    from assignments
    group by experiment_id, arm
),

configured as (
    select
        experiment_id,
        min(description) as description,
        min(assignment) as assignment,
        min(audience_kind) as audience_kind,
        min(audience) as audience,
        min(control_arm) as control_arm,
        min(window_days) as window_days,
        min(primary_metric) as primary_metric
    from experiment_config
    group by experiment_id
),

-- Without a configuration: the control is the arm without a discount, or the arm with a usual
-- control name, when exactly one arm qualifies.
inferred as (
    select
        experiment_id,
        count(*) as arms,
        string_agg(arm, ', ' order by arm) as arm_list,
        count(*) filter (where discount_pct = 0) as zero_discount_arms,
        min(arm) filter (where discount_pct = 0) as zero_discount_arm,
        count(*) filter (where lower(arm) in ('{{ control_names | join("', '") }}')) as named_arms,
        min(arm) filter (where lower(arm) in ('{{ control_names | join("', '") }}')) as named_arm
    from arms
    group by experiment_id
),

-- Arms in the data that experiments.yml does not declare.
undeclared as (
    select
        arms.experiment_id,
        string_agg(arms.arm, ', ' order by arms.arm) as undeclared_arms
    from arms
    inner join configured on arms.experiment_id = configured.experiment_id
    left join experiment_config
        on
            arms.experiment_id = experiment_config.experiment_id
            and arms.arm = experiment_config.arm
    where experiment_config.arm is null
    group by arms.experiment_id
),

per_experiment as (
    select
        experiment_id,
        count(*) as customers,
        min(assigned_at) as first_assigned_at,
        max(assigned_at) as last_assigned_at,
        count(discount_pct) = count(*) as has_discount,
        min(assignment_source) as assignment_source
    from assignments
    group by experiment_id
),

settled as (
    select
        per_experiment.*,
        configured.description,
        coalesce(configured.assignment, 'external') as assignment,
        configured.audience_kind,
        configured.audience,
        inferred.arms,
        inferred.arm_list,
        undeclared.undeclared_arms,
        configured.experiment_id is not null as is_configured,
        case
            when configured.control_arm is not null then configured.control_arm
            when inferred.zero_discount_arms = 1 then inferred.zero_discount_arm
            when inferred.named_arms = 1 then inferred.named_arm
        end as control_arm,
        case
            when configured.control_arm is not null then 'experiments.yml'
            when inferred.zero_discount_arms = 1 then 'the arm with discount_pct 0'
            when inferred.named_arms = 1 then 'the arm with a control name'
        end as control_arm_rule,
        coalesce(configured.window_days, {{ horizon }}) as window_days,
        coalesce(configured.primary_metric, 'conversion') as primary_metric,
        cast(scoring.as_of_date as timestamp) as data_until
    from per_experiment
    inner join inferred on per_experiment.experiment_id = inferred.experiment_id
    left join configured on per_experiment.experiment_id = configured.experiment_id
    left join undeclared on per_experiment.experiment_id = undeclared.experiment_id
    cross join scoring
),

final as (
    select
        experiment_id,
        description,
        cast(assignment as {{ string_type() }}) as assignment,
        cast(assignment_source as {{ string_type() }}) as assignment_source,
        audience_kind,
        audience,
        is_configured,
        cast(arms as integer) as arms,
        arm_list,
        control_arm,
        cast(control_arm_rule as {{ string_type() }}) as control_arm_rule,
        undeclared_arms,
        cast(customers as bigint) as customers,
        first_assigned_at,
        last_assigned_at,
        cast(window_days as integer) as window_days,
        {{ dbt.dateadd('day', 'window_days', 'last_assigned_at') }} as window_end,
        data_until,
        cast(case
            when first_assigned_at >= data_until then 'not_started'
            when {{ dbt.dateadd('day', 'window_days', 'last_assigned_at') }} <= data_until then 'complete'
            else 'running'
        end as {{ string_type() }}) as status,
        cast(primary_metric as {{ string_type() }}) as primary_metric,
        has_discount
    from settled
)

select * from final
