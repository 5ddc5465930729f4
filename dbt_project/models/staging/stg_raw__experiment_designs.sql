{#-
  Sample-size designs saved by `propensity experiment design --name NAME`
  (raw.experiment_designs, one row per design). Optional: without the table, the same columns
  and no rows. Ephemeral, as stg_raw__campaign_config.
-#}
{{ config(materialized='ephemeral') }}
{%- set designs_source = source('raw_experiments', 'experiment_designs') -%}
{%- set columns = {
    'design_id': 'varchar',
    'designed_at': 'timestamp',
    'metric': 'varchar',
    'arms': 'integer',
    'alpha': 'double',
    'alpha_per_comparison': 'double',
    'correction': 'varchar',
    'power': 'double',
    'baseline': 'double',
    'baseline_sd': 'double',
    'baseline_source': 'varchar',
    'mde': 'double',
    'effect_size': 'double',
    'effect_size_kind': 'varchar',
    'customers_per_arm': 'bigint',
    'customers_total': 'bigint',
    'audience': 'varchar',
    'audience_size': 'bigint',
    'daily_volume': 'double',
    'window_days': 'integer',
    'enrolment_days': 'integer',
    'duration_days': 'integer',
    'note': 'varchar',
} -%}

with source as (
    {%- if propensity_source_exists(designs_source) %}
        select * from {{ designs_source }}
    {%- else %}
        select
            {%- for name in columns %}
                null as {{ name }}{% if not loop.last %},{% endif %}
            {%- endfor %}
        where false
    {%- endif %}
),

final as (
    select
        {%- for name, data_type in columns.items() %}
            cast({{ name }} as {{ data_type }}) as {{ name }}{% if not loop.last %},{% endif %}
        {%- endfor %}
    from source
)

select * from final
