{#-
  Balance of an assignment: one row per (experiment, treated arm, feature), the standardised
  mean difference (SMD) of the feature between the arm and the control,
  (mean_arm - mean_control) / sqrt((var_arm + var_control) / 2). A random assignment is
  independent of every feature, so each |SMD| stays small; by chance alone its standard error
  is about sqrt(1 / n_arm + 1 / n_control) (smd_noise). is_imbalanced flags an |SMD| above the
  usual line of 0.1 that is also beyond 3 such standard errors: small experiments cross 0.1 by
  chance on some of ~60 features, large ones must not.

  Features are those of fct_customer_features (every numeric or boolean column of its catalogue)
  as of the assignment day T = cast(assigned_at as date): events strictly before T, so nothing
  the experiment caused (dim_cutoffs adds T as a cutoff of role `experiment`). Customers created
  on or after T have no features and are left out (counted in customers_with_features).
-#}
{%- set features = [] -%}
{%- for node in graph.nodes.values() if node.resource_type == 'model' and node.name == 'fct_customer_features' -%}
    {%- for column in node.columns.values() -%}
        {%- if column.data_type in ('integer', 'bigint', 'double', 'boolean') and column.name not in ('customer_id', 'as_of_date') -%}
            {%- do features.append(column.name) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endfor %}

with experiments as (
    select * from {{ ref('dim_experiments') }}
    where control_arm is not null
),

assignments as (
    select
        assignments.experiment_id,
        assignments.customer_id,
        assignments.arm,
        cast(assignments.assigned_at as date) as as_of_date
    from {{ ref('int_experiment_assignments') }} as assignments
    inner join experiments on assignments.experiment_id = experiments.experiment_id
    where assignments.assigned_at < experiments.data_until
),

features as (
    select * from {{ ref('fct_customer_features') }}
    where as_of_date in (select assignments.as_of_date from assignments)
),

per_arm as (
    select
        assignments.experiment_id,
        assignments.arm,
        {%- for f in features %}
            avg(cast(features.{{ f }} as double)) as mean__{{ f }},
            coalesce(var_samp(cast(features.{{ f }} as double)), 0) as var__{{ f }},
        {%- endfor %}
        count(*) as customers_with_features
    from assignments
    inner join features
        on
            assignments.customer_id = features.customer_id
            and assignments.as_of_date = features.as_of_date
    group by assignments.experiment_id, assignments.arm
),

unpivoted as (
    {%- for f in features %}
        select
            experiment_id,
            arm,
            customers_with_features,
            '{{ f }}' as feature,
            mean__{{ f }} as mean,
            var__{{ f }} as variance
        from per_arm
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
),

compared as (
    select
        arm.experiment_id,
        arm.arm,
        experiments.control_arm,
        arm.feature,
        arm.customers_with_features,
        control.customers_with_features as control_customers_with_features,
        arm.mean,
        control.mean as control_mean,
        sqrt(arm.variance) as sd,
        sqrt(control.variance) as control_sd,
        case
            when arm.variance + control.variance > 0
                then (arm.mean - control.mean) / sqrt((arm.variance + control.variance) / 2)
            else 0
        end as smd,
        sqrt(1.0 / arm.customers_with_features + 1.0 / control.customers_with_features) as smd_noise
    from unpivoted as arm
    inner join experiments on arm.experiment_id = experiments.experiment_id
    inner join unpivoted as control
        on
            arm.experiment_id = control.experiment_id
            and arm.feature = control.feature
            and experiments.control_arm = control.arm
    where arm.arm <> experiments.control_arm
),

final as (
    select
        experiment_id,
        arm,
        control_arm,
        cast(feature as {{ string_type() }}) as feature,
        cast(customers_with_features as bigint) as customers_with_features,
        cast(control_customers_with_features as bigint) as control_customers_with_features,
        mean,
        control_mean,
        sd,
        control_sd,
        smd,
        smd_noise,
        abs(smd) > greatest(0.1, 3 * smd_noise) as is_imbalanced
    from compared
)

select * from final
