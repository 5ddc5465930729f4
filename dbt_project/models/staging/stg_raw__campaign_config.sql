{#-
  The campaign configuration, one row per campaign. The source table is optional: without it (a
  warehouse without campaigns) this model has the same columns and no rows, so dim_campaigns and
  fct_campaign_audiences build empty. Ephemeral, so the existence check runs whenever
  dim_campaigns is built: a view built before `propensity campaigns set` would keep reading "no
  table" until it was rebuilt itself.
-#}
{{ config(materialized='ephemeral') }}
{%- set config_source = source('raw_campaigns', 'campaign_config') -%}
{%- set config_exists = false -%}
{%- if execute -%}
    {%- set config_exists = adapter.get_relation(
        database=config_source.database,
        schema=config_source.schema,
        identifier=config_source.identifier,
    ) is not none -%}
    {%- if not config_exists -%}
        {%- do log("stg_raw__campaign_config: no " ~ config_source ~ " table (load campaigns with "
            ~ "`propensity campaigns set FILE.yml`): building no campaigns", info=true) -%}
    {%- endif -%}
{%- endif %}

with source as (
    {%- if config_exists %}
        select * from {{ config_source }}
    {%- else %}
        select
            null as campaign_id,
            null as product_group,
            null as description,
            null as selection_type,
            null as selection_threshold,
            null as selection_top_k,
            null as selection_deciles,
            null as message_tiers,
            null as exclude_vip,
            null as exclude_unsubscribed_or_no_opt_in,
            null as contacted_within_days,
            null as frequency_cap,
            null as holdout_share,
            null as holdout_salt
        where false
    {%- endif %}
),

final as (
    select
        cast(campaign_id as {{ string_type() }}) as campaign_id,
        cast(product_group as {{ string_type() }}) as product_group,
        cast(description as {{ string_type() }}) as description,
        cast(selection_type as {{ string_type() }}) as selection_type,
        cast(selection_threshold as double) as selection_threshold,
        cast(selection_top_k as bigint) as selection_top_k,
        cast(selection_deciles as integer[]) as selection_deciles,
        cast(message_tiers as struct(message_tier varchar, min_score double, deciles integer[])[])
            as message_tiers,
        cast(exclude_vip as boolean) as exclude_vip,
        cast(exclude_unsubscribed_or_no_opt_in as boolean) as exclude_unsubscribed_or_no_opt_in,
        cast(contacted_within_days as integer) as contacted_within_days,
        cast(frequency_cap as integer) as frequency_cap,
        cast(holdout_share as double) as holdout_share,
        cast(holdout_salt as {{ string_type() }}) as holdout_salt
    from source
)

select * from final
