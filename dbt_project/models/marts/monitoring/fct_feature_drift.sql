{#-
  Feature drift: per scoring cutoff, product group and the model that scored it, the population
  stability index (PSI) and the Jensen-Shannon divergence (base 2, in [0, 1]) of each of the
  model's features between its training rows and the cutoff's scoring features, from the bins of
  fct_drift_bins. drift_status: 'alert' from dbt var drift_psi_alert, 'warn' from drift_psi_warn,
  else 'ok'; null for the features of dbt var drift_ignore_features (reported, never judged).
  Incremental, delete+insert on as_of_date: the history of earlier cutoffs stays.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='as_of_date',
    on_schema_change='fail',
    tags=['monitoring'],
) }}

{%- set ignored = var('drift_ignore_features') or [] %}

with cutoffs as (
    select as_of_date from {{ ref('dim_cutoffs') }}
    where cutoff_role = 'scoring'
),

bins as (
    select * from {{ ref('fct_drift_bins') }}
    where
        as_of_date in (select cutoffs.as_of_date from cutoffs)
        and feature_kind in ('numeric', 'categorical')
),

per_feature as (
    select
        product_group,
        model_id,
        as_of_date,
        feature_name,
        feature_kind,
        {{ drift_aggregates() }}
    from bins
    group by product_group, model_id, as_of_date, feature_name, feature_kind
),

judged as (
    select
        *,
        {% if ignored -%}
            feature_name not in (
                {%- for f in ignored %}{{ propensity_string_literal(f) }}{{ ', ' if not loop.last }}{% endfor -%}
            )
        {%- else -%}
            true
        {%- endif %} as is_monitored
    from per_feature
),

final as (
    select
        product_group,
        model_id,
        as_of_date,
        feature_name,
        cast(feature_kind as {{ string_type() }}) as feature_kind,
        cast(psi as double) as psi,
        cast(js_divergence as double) as js_divergence,
        cast({{ drift_status('psi', 'is_monitored') }} as {{ string_type() }}) as drift_status,
        is_monitored,
        cast(unseen_share as double) as unseen_share,
        cast(bins as integer) as bins,
        cast(reference_rows as bigint) as reference_rows,
        cast(current_rows as bigint) as current_rows
    from judged
)

select * from final
