{#-
  Score drift: per scoring cutoff, product group and the model that scored it, the population
  stability index (PSI) and the Jensen-Shannon divergence (base 2, in [0, 1]) of the calibrated
  score between the model's training rows and the cutoff's scores (fct_propensity_scores), from
  the bins of fct_drift_bins. drift_status: 'alert' from dbt var drift_psi_alert, 'warn' from
  drift_psi_warn, else 'ok'.
  Incremental, delete+insert on as_of_date: the history of earlier cutoffs stays.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='as_of_date',
    on_schema_change='fail',
    tags=['monitoring'],
) }}

with cutoffs as (
    select as_of_date from {{ ref('dim_cutoffs') }}
    where cutoff_role = 'scoring'
),

bins as (
    select * from {{ ref('fct_drift_bins') }}
    where
        as_of_date in (select cutoffs.as_of_date from cutoffs)
        and feature_kind = 'score'
),

per_model as (
    select
        product_group,
        model_id,
        as_of_date,
        {{ drift_aggregates() }}
    from bins
    group by product_group, model_id, as_of_date
),

final as (
    select
        product_group,
        model_id,
        as_of_date,
        cast(psi as double) as psi,
        cast(js_divergence as double) as js_divergence,
        cast({{ drift_status('psi') }} as {{ string_type() }}) as drift_status,
        cast(unseen_share as double) as unseen_share,
        cast(bins as integer) as bins,
        cast(reference_rows as bigint) as reference_rows,
        cast(current_rows as bigint) as current_rows
    from per_model
)

select * from final
