{#-
  The cutoffs (as-of dates) features and labels are built for. Cutoff T: features use events
  strictly before T (00:00); labels use [T, T + horizon_days).
  - scoring: var scoring_cutoff, else the day after the last order date in the warehouse.
  - training: var training_cutoffs, else scoring - horizon_days - k * cutoff_step_days for
    k = 0 .. max_training_cutoffs - 1 while T >= first order date + min_history_days.
    Only cutoffs whose label window is fully observed (T + horizon_days <= scoring cutoff) are kept.
  - roles: the newest test_cutoffs training cutoffs are 'test', the validation_cutoffs before
    them 'validation', the rest 'train', purged: a cutoff whose label window reaches past the
    first cutoff of a later split is dropped (only when cutoffs are closer than horizon_days).
  - experiment: the day of each experiment assignment (int_experiment_assignments.assigned_at,
    cast to a date) before the scoring cutoff that is not already a training or scoring cutoff
    (then that cutoff's features serve it). fct_experiment_examples reads the features as of
    these days (for experiments whose outcome window [day, day + horizon_days) has ended), and
    fct_experiment_balance (for every experiment, running ones too): events strictly before the
    assignment day, so nothing at or after the assignment.
  - a scoring-only run (var feature_cutoff_roles without a training role, the daily run) keeps
    the training cutoffs and roles stored in fct_training_examples instead of deriving new ones
    from its scoring cutoff (macro propensity_stored_training_cutoffs), with the same rule that
    their label window ends on or before the scoring cutoff.
  Invalid vars (horizon <= 0, an empty list, a malformed date) stop the build at compile time.
-#}
{%- set horizon = propensity_horizon_days() -%}
{%- set step = propensity_int_var('cutoff_step_days', 1) -%}
{%- set max_cutoffs = propensity_int_var('max_training_cutoffs', 1) -%}
{%- set min_history = propensity_int_var('min_history_days', 0) -%}
{%- set n_test = propensity_int_var('test_cutoffs', 0) -%}
{%- set n_validation = propensity_int_var('validation_cutoffs', 0) -%}
{%- set explicit = propensity_explicit_training_cutoffs() -%}
{%- set scoring_var = var('scoring_cutoff') -%}
{%- set stored = propensity_stored_training_cutoffs() -%}

with orders as (
    select * from {{ ref('int_orders_summarised') }}
),

bounds as (
    select
        min(order_date) as first_order_date,
        max(order_date) as last_order_date
    from orders
),

scoring as (
    select
        {%- if scoring_var is not none %}
        {{ propensity_date_literal(propensity_parse_date(scoring_var, 'dbt var scoring_cutoff')) }} as as_of_date,
        {%- else %}
            cast({{ add_days(1, 'last_order_date') }} as date) as as_of_date,
        {%- endif %}
        first_order_date
    from bounds
),

candidates as (
    {%- if explicit is not none %}
    {%- for d in explicit %}
    select {{ propensity_date_literal(d) }} as as_of_date
    {%- if not loop.last %}
    union all
    {%- endif %}
    {%- endfor %}
    {%- else %}
        {%- for k in range(max_cutoffs) %}
            select cast({{ add_days(-(horizon + k * step), 'scoring.as_of_date') }} as date) as as_of_date
            from scoring
            where
                {{ add_days(-(horizon + k * step), 'scoring.as_of_date') }}
                >= {{ add_days(min_history, 'scoring.first_order_date') }}
            {%- if not loop.last %}
                union all
            {%- endif %}
        {%- endfor %}
    {%- endif %}
),

observed as (
    select candidates.as_of_date
    from candidates
    cross join scoring
    where {{ add_days(horizon, 'candidates.as_of_date') }} <= scoring.as_of_date
),

-- Roles, newest first, purged: a cutoff's label window [T, T + horizon) must end by the first
-- cutoff of the later split, or its labels would hold purchases the later split's features
-- already see (cutoffs closer than horizon_days, e.g. cutoff_step_days: 7). The newest
-- test_cutoffs are 'test'; the newest validation_cutoffs whose windows end by the first test
-- cutoff are 'validation'; every cutoff whose window ends by the first held-out one is 'train'.
test_cutoffs as (
    select as_of_date
    from observed
    order by as_of_date desc
    limit {{ n_test }}
),

validation_cutoffs as (
    select as_of_date
    from observed
    where
        {{ add_days(horizon, 'as_of_date') }}
        <= coalesce((select min(test_cutoffs.as_of_date) from test_cutoffs), date '9999-12-31')
    order by as_of_date desc
    limit {{ n_validation }}
),

held_out as (
    select
        as_of_date,
        'test' as cutoff_role
    from test_cutoffs
    union all
    select
        as_of_date,
        'validation' as cutoff_role
    from validation_cutoffs
),

train_cutoffs as (
    select
        as_of_date,
        'train' as cutoff_role
    from observed
    where
        {{ add_days(horizon, 'as_of_date') }}
        <= coalesce((select min(held_out.as_of_date) from held_out), date '9999-12-31')
),

training as (
    {%- if stored is not none %}
        select
            stored.as_of_date,
            stored.cutoff_role
        from (
            values
            {%- for c in stored %}
                ({{ propensity_date_literal(c.as_of_date) }}, '{{ c.cutoff_role }}'){% if not loop.last %},{% endif %}
            {%- endfor %}
        ) as stored (as_of_date, cutoff_role)
        cross join scoring
        where {{ add_days(horizon, 'stored.as_of_date') }} <= scoring.as_of_date
    {%- else %}
        select
            as_of_date,
            cutoff_role
        from held_out
        union all
        select
            as_of_date,
            cutoff_role
        from train_cutoffs
    {%- endif %}
),

-- Experiment assignment days before the scoring cutoff, unless already a cutoff.
experiments as (
    select distinct cast(assignments.assigned_at as date) as as_of_date
    from {{ ref('int_experiment_assignments') }} as assignments
    cross join scoring
    where
        assignments.assigned_at is not null
        and cast(assignments.assigned_at as date) < scoring.as_of_date
),

unioned as (
    select
        as_of_date,
        cutoff_role
    from training
    union all
    select
        as_of_date,
        'scoring' as cutoff_role
    from scoring
    union all
    select
        as_of_date,
        'experiment' as cutoff_role
    from experiments
    where
        as_of_date not in (select training.as_of_date from training)
        and as_of_date not in (select scoring.as_of_date from scoring)
),

final as (
    select
        as_of_date,
        cast(cutoff_role as {{ string_type() }}) as cutoff_role,
        cast({{ add_days(horizon, 'as_of_date') }} as date) as label_window_end
    from unioned
)

select * from final
