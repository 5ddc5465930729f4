{#-
  Audiences: one row per campaign x customer scored for the campaign's product group at the latest
  as_of_date of fct_propensity_scores. Each row says whether the customer passes the campaign's
  selection (is_eligible), the first suppression rule that excludes them (exclusion_reason), whether
  they fall in the hold-out control (is_holdout) and so whether to send (is_selected), and the
  message tier (first matching tier rule). docs/audiences.md describes every rule.

  - Selection is independent of suppression: threshold (score >= x), top_k (the k best scores of
    the group, ties broken by customer_id ascending, so exactly k when k <= customers scored), or
    deciles (decile in the list).
  - Exclusion order: vip, unsubscribed, no_opt_in, contacted_recently, frequency_cap. Contact
    history uses email events strictly before the as_of_date.
  - Hold-out: md5(holdout_salt || '|' || campaign_id || '|' || customer_id), its first 8 hex digits
    as an integer, mod 10000, below round(holdout_share * 10000). Stable across runs and cutoffs,
    independent of the score, changed by changing the salt.
-#}
with scores as (
    select * from {{ ref('fct_propensity_scores') }}
),

campaigns as (
    select * from {{ ref('dim_campaigns') }}
),

customers as (
    select * from {{ ref('stg_raw__customers') }}
),

email_events as (
    select * from {{ ref('stg_raw__email_events') }}
),

latest_cutoff as (
    select max(as_of_date) as as_of_date from scores
),

latest_scores as (
    select
        scores.customer_id,
        scores.product_group,
        scores.as_of_date,
        scores.model_id,
        scores.score,
        scores.decile
    from scores
    inner join latest_cutoff on scores.as_of_date = latest_cutoff.as_of_date
),

contact_history as (
    {{ propensity_contact_history('email_events', 'latest_cutoff') }}
),

campaign_scores as (
    select
        campaigns.campaign_id,
        campaigns.product_group,
        latest_scores.customer_id,
        latest_scores.as_of_date,
        latest_scores.model_id,
        latest_scores.score,
        latest_scores.decile,
        row_number() over (
            partition by campaigns.campaign_id
            order by latest_scores.score desc, latest_scores.customer_id asc
        ) as score_rank,
        case campaigns.selection_type
            when 'threshold' then latest_scores.score >= campaigns.selection_threshold
            when 'top_k' then false
            when 'deciles' then list_contains(campaigns.selection_deciles, latest_scores.decile)
            else false
        end as passes_value_rule,
        campaigns.selection_type,
        campaigns.selection_top_k,
        campaigns.exclude_vip,
        campaigns.exclude_unsubscribed_or_no_opt_in,
        campaigns.contacted_within_days,
        campaigns.frequency_cap,
        campaigns.holdout_share,
        campaigns.holdout_salt
    from campaigns
    inner join latest_scores on campaigns.product_group = latest_scores.product_group
),

unnested_tiers as (
    select
        campaign_id,
        generate_subscripts(message_tiers, 1) as tier_rank,
        unnest(message_tiers) as tier_rule
    from campaigns
),

tier_rules as (
    select
        unnested_tiers.campaign_id,
        unnested_tiers.tier_rank,
        unnested_tiers.tier_rule.message_tier,
        unnested_tiers.tier_rule.min_score,
        unnested_tiers.tier_rule.deciles
    from unnested_tiers
),

message_tiers as (
    select
        campaign_scores.campaign_id,
        campaign_scores.customer_id,
        min_by(tier_rules.message_tier, tier_rules.tier_rank) as message_tier
    from campaign_scores
    inner join tier_rules
        on
            campaign_scores.campaign_id = tier_rules.campaign_id
            and (tier_rules.min_score is null or campaign_scores.score >= tier_rules.min_score)
            and (tier_rules.deciles is null or list_contains(tier_rules.deciles, campaign_scores.decile))
    group by campaign_scores.campaign_id, campaign_scores.customer_id
),

flagged as (
    select
        campaign_scores.*,
        contact_history.last_sent_at,
        coalesce(contact_history.email_sends_30d, 0) as email_sends_30d,
        coalesce(contact_history.is_unsubscribed, false) as is_unsubscribed,
        coalesce(customers.is_vip, false) as is_vip,
        coalesce(customers.is_email_opt_in, false) as is_email_opt_in,
        {{ propensity_holdout_bucket(
            'campaign_scores.holdout_salt', 'campaign_scores.campaign_id', 'campaign_scores.customer_id'
        ) }} as holdout_bucket
    from campaign_scores
    left join contact_history on campaign_scores.customer_id = contact_history.customer_id
    left join customers on campaign_scores.customer_id = customers.customer_id
),

decided as (
    select
        *,
        case
            when selection_type = 'top_k' then score_rank <= selection_top_k
            else coalesce(passes_value_rule, false)
        end as is_eligible,
        case
            when exclude_vip and is_vip then 'vip'
            when exclude_unsubscribed_or_no_opt_in and is_unsubscribed then 'unsubscribed'
            when exclude_unsubscribed_or_no_opt_in and not is_email_opt_in then 'no_opt_in'
            when
                contacted_within_days is not null
                and last_sent_at
                >= cast({{ dbt.dateadd('day', '-1 * contacted_within_days', 'as_of_date') }} as timestamp)
                then 'contacted_recently'
            when frequency_cap is not null and email_sends_30d >= frequency_cap then 'frequency_cap'
        end as exclusion_reason,
        holdout_bucket < round(holdout_share * 10000) as is_holdout
    from flagged
),

final as (
    select
        decided.campaign_id,
        decided.customer_id,
        decided.product_group,
        decided.as_of_date,
        decided.model_id,
        decided.score,
        decided.decile,
        cast(decided.score_rank as bigint) as score_rank,
        decided.is_eligible,
        decided.exclusion_reason,
        decided.is_holdout,
        decided.is_eligible and decided.exclusion_reason is null and not decided.is_holdout as is_selected,
        message_tiers.message_tier,
        decided.holdout_bucket,
        decided.last_sent_at,
        cast(decided.email_sends_30d as integer) as email_sends_30d
    from decided
    left join message_tiers
        on
            decided.campaign_id = message_tiers.campaign_id
            and decided.customer_id = message_tiers.customer_id
)

select * from final
