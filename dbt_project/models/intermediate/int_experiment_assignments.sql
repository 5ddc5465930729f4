{#-
  Every experiment assignment, one row per (experiment, customer): the experiments loaded into
  raw.treatments (the raw contract) and those assigned by `propensity experiment assign`
  (raw.experiment_assignments, salted hash). An experiment id lives in one of the two: the
  command refuses an id raw.treatments already holds, and the unique test below catches a
  clash written by hand.
-#}
with treatments as (
    select * from {{ ref('stg_raw__treatments') }}
),

assigned as (
    select * from {{ ref('stg_raw__experiment_assignments') }}
),

unioned as (
    select
        experiment_id,
        customer_id,
        arm,
        assigned_at,
        discount_pct,
        'raw.treatments' as assignment_source
    from treatments
    union all
    select
        experiment_id,
        customer_id,
        arm,
        assigned_at,
        discount_pct,
        'raw.experiment_assignments' as assignment_source
    from assigned
),

final as (
    select
        experiment_id,
        customer_id,
        arm,
        assigned_at,
        discount_pct,
        cast(assignment_source as {{ string_type() }}) as assignment_source
    from unioned
)

select * from final
