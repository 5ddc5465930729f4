{#-
  The offer configuration, one row per offer and arm (`propensity offers set FILE.yml`,
  validated there). The source table is optional: without it this model has the same columns and
  no rows, so fct_offer_assignments builds empty. Ephemeral, as stg_raw__campaign_config.
-#}
{{ config(materialized='ephemeral') }}
{%- set config_source = source('raw_offers', 'offer_config') -%}
{%- set config_exists = false -%}
{%- if execute -%}
    {%- set config_exists = adapter.get_relation(
        database=config_source.database,
        schema=config_source.schema,
        identifier=config_source.identifier,
    ) is not none -%}
{%- endif %}

with source as (
    {%- if config_exists %}
        select * from {{ config_source }}
    {%- else %}
        select
            null as offer_id,
            null as offer_family,
            null as description,
            null as policy,
            null as arm,
            null as cost_per_contact,
            null as max_customers,
            null as max_discount_spend,
            null as rule_order,
            null as rule_min_cate_purchase,
            null as exclude_vip,
            null as exclude_unsubscribed_or_no_opt_in,
            null as contacted_within_days,
            null as frequency_cap,
            null as holdout_share,
            null as holdout_salt,
            null as require_held_out_gain
        where false
    {%- endif %}
),

final as (
    select
        cast(offer_id as {{ string_type() }}) as offer_id,
        cast(offer_family as {{ string_type() }}) as offer_family,
        cast(description as {{ string_type() }}) as description,
        cast(policy as {{ string_type() }}) as policy,
        cast(arm as {{ string_type() }}) as arm,
        cast(cost_per_contact as double) as cost_per_contact,
        cast(max_customers as bigint) as max_customers,
        cast(max_discount_spend as double) as max_discount_spend,
        cast(rule_order as integer) as rule_order,
        cast(rule_min_cate_purchase as double) as rule_min_cate_purchase,
        cast(exclude_vip as boolean) as exclude_vip,
        cast(exclude_unsubscribed_or_no_opt_in as boolean) as exclude_unsubscribed_or_no_opt_in,
        cast(contacted_within_days as integer) as contacted_within_days,
        cast(frequency_cap as integer) as frequency_cap,
        cast(holdout_share as double) as holdout_share,
        cast(holdout_salt as {{ string_type() }}) as holdout_salt,
        cast(require_held_out_gain as boolean) as require_held_out_gain
    from source
)

select * from final
