{#-
  The experiments of experiments.yml (raw.experiment_config, `propensity experiment assign`),
  one row per experiment and arm, validated when written. Optional: without the table, the same
  columns and no rows (experiments of raw.treatments are then analysed with inferred settings,
  see dim_experiments). Ephemeral, as stg_raw__campaign_config.
-#}
{{ config(materialized='ephemeral') }}
{%- set config_source = source('raw_experiments', 'experiment_config') -%}

with source as (
    {%- if propensity_source_exists(config_source) %}
        select * from {{ config_source }}
    {%- else %}
        select
            null as experiment_id,
            null as description,
            null as assignment,
            null as audience_kind,
            null as audience,
            null as control_arm,
            null as arm,
            null as share,
            null as discount_pct,
            null as salt,
            null as window_days,
            null as primary_metric,
            null as configured_at
        where false
    {%- endif %}
),

final as (
    select
        cast(experiment_id as {{ string_type() }}) as experiment_id,
        cast(description as {{ string_type() }}) as description,
        cast(assignment as {{ string_type() }}) as assignment,
        cast(audience_kind as {{ string_type() }}) as audience_kind,
        cast(audience as {{ string_type() }}) as audience,
        cast(control_arm as {{ string_type() }}) as control_arm,
        cast(arm as {{ string_type() }}) as arm,
        cast(share as double) as share,
        cast(discount_pct as double) as discount_pct,
        cast(salt as {{ string_type() }}) as salt,
        cast(window_days as integer) as window_days,
        cast(primary_metric as {{ string_type() }}) as primary_metric,
        cast(configured_at as timestamp) as configured_at
    from source
)

select * from final
