{{ config(severity='warn') }}
{#-
  fct_experiment_examples holds an experiment only once its outcome window
  [assigned_at, assigned_at + horizon_days) has ended by the scoring cutoff. Say which
  experiments are left out, and why, instead of leaving them out silently: assignments on or
  after the scoring cutoff (data from after the cutoff, e.g. a scoring_cutoff var in the past)
  and experiments still running.
-#}
{%- set horizon = propensity_horizon_days() %}

with cutoffs as (
    select * from {{ ref('dim_cutoffs') }}
    where cutoff_role = 'scoring'
),

treatments as (
    select * from {{ ref('int_experiment_assignments') }}
),

late as (
    select
        treatments.experiment_id,
        count(*) as assignments,
        max(treatments.assigned_at) as last_assigned_at,
        min(cutoffs.as_of_date) as scoring_cutoff,
        bool_or(cast(treatments.assigned_at as date) >= cutoffs.as_of_date) as after_cutoff
    from treatments
    cross join cutoffs
    where
        {{ dbt.dateadd('day', horizon, 'cast(treatments.assigned_at as date)') }}
        > cutoffs.as_of_date
    group by treatments.experiment_id
),

final as (
    select
        'experiment ' || experiment_id || ': ' || cast(assignments as {{ string_type() }})
        || ' assignments are left out of fct_experiment_examples, '
        || case
            when after_cutoff
                then
                    'some assigned on or after the scoring cutoff '
                    || cast(scoring_cutoff as {{ string_type() }}) || ' (last ' || cast(last_assigned_at as {{ string_type() }})
                    || '): data from after the cutoff. Check dbt var scoring_cutoff and raw.treatments.'
            else
                'their outcome window of {{ horizon }} days ends after the scoring cutoff '
                || cast(scoring_cutoff as {{ string_type() }}) || ': the experiment is still running.'
        end as problem
    from late
)

select * from final
