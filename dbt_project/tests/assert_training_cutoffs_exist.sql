{#-
  No training cutoff means no training examples. With explicit var training_cutoffs this is an
  error (every given cutoff's label window ends after the scoring cutoff); when cutoffs are derived
  from the data it is a warning, so a new warehouse with little history still builds its features
  and scoring features (training then stops with its own message).
-#}
{{ config(severity=('error' if var('training_cutoffs') is not none else 'warn')) }}

with cutoffs as (
    select * from {{ ref('dim_cutoffs') }}
),

scoring as (
    select max(as_of_date) as scoring_cutoff
    from cutoffs
    where cutoff_role = 'scoring'
),

training as (
    select count(*) as n_training
    from cutoffs
    where cutoff_role in ('train', 'validation', 'test')
),

final as (
    select
        'no training cutoff: the scoring cutoff is '
        || coalesce(cast(scoring.scoring_cutoff as {{ string_type() }}), 'unknown (no orders)')
        || ', and a training cutoff T needs T + horizon_days ({{ var("horizon_days") }}) <= the scoring cutoff'
        || {% if var('training_cutoffs') is none -%}
            ' and T >= the first order date + min_history_days ({{ var("min_history_days") }}). '
            || 'Load more history, lower min_history_days or horizon_days, or set training_cutoffs.'
        {%- else -%}
        '. Every date in dbt var training_cutoffs is too recent: choose earlier dates.'
        {%- endif %} as problem
    from training
    cross join scoring
    where training.n_training = 0
)

select * from final
