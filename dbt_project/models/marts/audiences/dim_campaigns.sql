{#-
  The campaign configuration (raw.campaign_config, written by `propensity campaigns set FILE.yml`),
  one row per campaign. The config table is optional: when it is absent (a warehouse without
  campaigns) this model, and so fct_campaign_audiences, builds empty. Values were validated when
  the file was loaded. Product group names are checked against dim_product_groups by the test
  dim_campaigns_product_group_is_known on known_product_group (a column of this model rather than
  a test with two parents, so that `dbt build --select dim_product_groups` never selects it).
-#}
{%- set config_source = source('raw_campaigns', 'campaign_config') -%}
{%- set config_exists = false -%}
{%- if execute -%}
    {%- set config_exists = adapter.get_relation(
        database=config_source.database,
        schema=config_source.schema,
        identifier=config_source.identifier,
    ) is not none -%}
    {%- if not config_exists -%}
        {%- do log("dim_campaigns: no " ~ config_source ~ " table (load campaigns with "
            ~ "`propensity campaigns set FILE.yml`): building no campaigns", info=true) -%}
    {%- endif -%}
{%- endif %}

with campaign_config as (
    {%- if config_exists %}
        select * from {{ config_source }}
    {%- else %}
        select
            cast(null as varchar) as campaign_id,
            cast(null as varchar) as product_group,
            cast(null as varchar) as description,
            cast(null as varchar) as selection_type,
            cast(null as double) as selection_threshold,
            cast(null as bigint) as selection_top_k,
            cast(null as integer[]) as selection_deciles,
            cast(null as struct(message_tier varchar, min_score double, deciles integer[])[]) as message_tiers,
            cast(null as boolean) as exclude_vip,
            cast(null as boolean) as exclude_unsubscribed_or_no_opt_in,
            cast(null as integer) as contacted_within_days,
            cast(null as integer) as frequency_cap,
            cast(null as double) as holdout_share,
            cast(null as varchar) as holdout_salt
        where false
    {%- endif %}
),

product_groups as (
    select * from {{ ref('dim_product_groups') }}
),

final as (
    select
        cast(campaign_config.campaign_id as varchar) as campaign_id,
        cast(campaign_config.product_group as varchar) as product_group,
        cast(campaign_config.description as varchar) as description,
        cast(campaign_config.selection_type as varchar) as selection_type,
        cast(campaign_config.selection_threshold as double) as selection_threshold,
        cast(campaign_config.selection_top_k as bigint) as selection_top_k,
        campaign_config.selection_deciles,
        campaign_config.message_tiers,
        coalesce(cast(campaign_config.exclude_vip as boolean), false) as exclude_vip,
        coalesce(cast(campaign_config.exclude_unsubscribed_or_no_opt_in as boolean), true) as exclude_unsubscribed_or_no_opt_in,
        cast(campaign_config.contacted_within_days as integer) as contacted_within_days,
        cast(campaign_config.frequency_cap as integer) as frequency_cap,
        coalesce(cast(campaign_config.holdout_share as double), 0) as holdout_share,
        coalesce(cast(campaign_config.holdout_salt as varchar), '') as holdout_salt,
        product_groups.product_group as known_product_group
    from campaign_config
    left join product_groups on campaign_config.product_group = product_groups.product_group
)

select * from final
