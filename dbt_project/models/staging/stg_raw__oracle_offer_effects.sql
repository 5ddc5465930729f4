{#-
  The generator's true effect of each discount arm offered at the scoring cutoff
  (raw.oracle_offer_effects, docs/oracle.md). Only generated warehouses have it: without the
  table this model has the same columns and no rows. Ephemeral, as stg_raw__campaign_config.
-#}
{{ config(materialized='ephemeral') }}
{%- set oracle_source = source('raw_oracle', 'oracle_offer_effects') -%}
{%- set exists = false -%}
{%- if execute -%}
    {%- set exists = adapter.get_relation(
        database=oracle_source.database,
        schema=oracle_source.schema,
        identifier=oracle_source.identifier,
    ) is not none -%}
{%- endif %}

with source as (
    {%- if exists %}
        select * from {{ oracle_source }}
    {%- else %}
        select
            null as customer_id,
            null as as_of_date,
            null as arm,
            null as margin_effect
        where false
    {%- endif %}
),

final as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(as_of_date as date) as as_of_date,
        cast(arm as {{ string_type() }}) as arm,
        cast(margin_effect as double) as margin_effect
    from source
)

select * from final
