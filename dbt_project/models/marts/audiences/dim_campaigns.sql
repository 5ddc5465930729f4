{#-
  The campaigns, one row per campaign, with the defaults of optional rules. Values were validated
  when the file was loaded (`propensity campaigns set FILE.yml`); no campaigns configured builds an
  empty table. Product group names are checked against dim_product_groups by the test
  dim_campaigns_product_group_is_known on known_product_group (a column of this model rather than
  a test with two parents, so that `dbt build --select dim_product_groups` never selects it).
-#}
with campaign_config as (
    select * from {{ ref('stg_raw__campaign_config') }}
),

product_groups as (
    select * from {{ ref('dim_product_groups') }}
),

final as (
    select
        campaign_config.campaign_id,
        campaign_config.product_group,
        campaign_config.description,
        campaign_config.selection_type,
        campaign_config.selection_threshold,
        campaign_config.selection_top_k,
        campaign_config.selection_deciles,
        campaign_config.message_tiers,
        coalesce(campaign_config.exclude_vip, false) as exclude_vip,
        coalesce(campaign_config.exclude_unsubscribed_or_no_opt_in, true) as exclude_unsubscribed_or_no_opt_in,
        campaign_config.contacted_within_days,
        campaign_config.frequency_cap,
        coalesce(campaign_config.holdout_share, 0) as holdout_share,
        coalesce(campaign_config.holdout_salt, '') as holdout_salt,
        product_groups.product_group as known_product_group
    from campaign_config
    left join product_groups on campaign_config.product_group = product_groups.product_group
)

select * from final
