{#-
  Salted-hash assignments written by `propensity experiment assign` (raw.experiment_assignments).
  The table is optional: without it, the same columns and no rows. Ephemeral, so the check for
  the table runs whenever int_experiment_assignments is built.
-#}
{{ config(materialized='ephemeral') }}
{%- set assignments_source = source('raw_experiments', 'experiment_assignments') -%}

with source as (
    {%- if propensity_source_exists(assignments_source) %}
        select * from {{ assignments_source }}
    {%- else %}
        select
            null as experiment_id,
            null as customer_id,
            null as arm,
            null as assigned_at,
            null as discount_pct,
            null as salt,
            null as bucket
        where false
    {%- endif %}
),

final as (
    select
        cast(experiment_id as {{ string_type() }}) as experiment_id,
        cast(customer_id as bigint) as customer_id,
        cast(arm as {{ string_type() }}) as arm,
        cast(assigned_at as timestamp) as assigned_at,
        cast(discount_pct as double) as discount_pct,
        cast(salt as {{ string_type() }}) as salt,
        cast(bucket as integer) as bucket
    from source
)

select * from final
