{#-
  Offer assignments: one row per offer (raw.offer_config) x customer scored by the offer
  family's champion uplift set at the newest cutoff of fct_uplift_scores. docs/uplift.md.

  - Profit of an arm = cate_margin (expected margin under the arm minus under the control, from
    fct_uplift_scores) - cost_per_contact. Policy `profit`: the arm with the highest profit, only
    if positive. Policy `rule_table`: the first rule (in order) whose arm's cate_purchase reaches
    its min_cate_purchase.
  - Suppression (before the budget, first matching reason): vip, unsubscribed, no_opt_in,
    contacted_recently, frequency_cap, with the contact history of fct_campaign_audiences.
  - Budget per arm (max_customers, max_discount_spend = expected discount paid, i.e. expected
    revenue x d / (1 - d)): the customers whose chosen arm it is are ranked by profit per unit of
    budget (per customer, or per unit of expected discount spend when max_discount_spend is set)
    and kept while the running total fits. One pass: a customer over an arm's budget is not
    offered another arm. It maximises the expected incremental profit of each arm's budget
    when every customer's best arm is taken as given.
  - Hold-out: the hash rule of the audiences (md5 of salt | offer | customer), decided after
    the choice, so held-out customers show the arm they would have had (is_offer false).
  - Gate (policy `profit`, require_held_out_gain, the default): while the champion set's
    held-out policy value (ml.uplift_model_sets: the incremental margin its profit policy
    earned on the experiment's held-out share against no offer) is <= 0, nobody gets an offer
    (reason 'no_held_out_gain'): the model's margin effects did not pay on data it never saw.
  - reason: the suppression reason, 'no_positive_profit' / 'no_rule_matched',
    'no_held_out_gain', 'holdout', 'over_budget' or 'offer'. arm is the offered arm (held out:
    the arm it would have had), otherwise the control arm.
  - p_redeem: the probability that an offered customer uses the offer, the two-part model's
    purchase probability under the offered arm (trained on that treated arm of the experiment:
    a purchase in the window by a treated customer uses the discount).
-#}
with config as (
    select * from {{ ref('stg_raw__offer_config') }}
),

scores as (
    select * from {{ ref('fct_uplift_scores') }}
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
    select scores.*
    from scores
    inner join latest_cutoff on scores.as_of_date = latest_cutoff.as_of_date
),

segments as (
    select
        customer_id,
        rfm_segment
    from {{ ref('fct_customer_features') }}
    where as_of_date = (select latest_cutoff.as_of_date from latest_cutoff)
),

contact_history as (
    {{ propensity_contact_history('email_events', 'latest_cutoff') }}
),

offers as (
    select distinct
        offer_id,
        offer_family,
        policy,
        exclude_vip,
        exclude_unsubscribed_or_no_opt_in,
        contacted_within_days,
        frequency_cap,
        holdout_share,
        holdout_salt,
        require_held_out_gain
    from config
),

champions as (
    select * from {{ ref('stg_ml__uplift_champions') }}
),

controls as (
    select
        customer_id,
        offer_family,
        arm as control_arm,
        model_set_id,
        as_of_date
    from latest_scores
    where is_control
),

candidates as (
    select
        config.offer_id,
        config.policy,
        latest_scores.customer_id,
        latest_scores.arm,
        latest_scores.discount_pct,
        latest_scores.p_purchase,
        latest_scores.cate_purchase,
        latest_scores.cate_margin,
        latest_scores.cate_margin - config.cost_per_contact as profit,
        latest_scores.expected_revenue * latest_scores.discount_pct
        / (100 - latest_scores.discount_pct) as discount_spend,
        config.max_customers,
        config.max_discount_spend,
        config.rule_order,
        config.rule_min_cate_purchase
    from config
    inner join latest_scores
        on
            config.offer_family = latest_scores.offer_family
            and config.arm = latest_scores.arm
            and not latest_scores.is_control
),

chosen as (
    select
        offer_id,
        customer_id,
        case
            when min(policy) = 'profit'
                then arg_max(arm, profit) filter (where profit > 0)
            else arg_min(arm, rule_order) filter (where cate_purchase >= rule_min_cate_purchase)
        end as chosen_arm
    from candidates
    group by offer_id, customer_id
),

flagged as (
    select
        offers.offer_id,
        offers.offer_family,
        offers.policy,
        controls.customer_id,
        controls.as_of_date,
        controls.model_set_id,
        controls.control_arm,
        chosen.chosen_arm,
        offers.policy = 'profit'
        and offers.require_held_out_gain
        and champions.held_out_policy_value <= 0 as fails_gate,
        case
            when offers.exclude_vip and coalesce(customers.is_vip, false) then 'vip'
            when
                offers.exclude_unsubscribed_or_no_opt_in
                and coalesce(contact_history.is_unsubscribed, false)
                then 'unsubscribed'
            when
                offers.exclude_unsubscribed_or_no_opt_in
                and not coalesce(customers.is_email_opt_in, false)
                then 'no_opt_in'
            when
                offers.contacted_within_days is not null
                and contact_history.last_sent_at
                >= cast({{ dbt.dateadd('day', '-1 * offers.contacted_within_days', 'controls.as_of_date') }} as timestamp)
                then 'contacted_recently'
            when
                offers.frequency_cap is not null
                and coalesce(contact_history.email_sends_30d, 0) >= offers.frequency_cap
                then 'frequency_cap'
        end as exclusion_reason,
        {{ propensity_holdout_bucket('offers.holdout_salt', 'offers.offer_id', 'controls.customer_id') }}
        < round(offers.holdout_share * 10000) as is_holdout
    from offers
    inner join controls on offers.offer_family = controls.offer_family
    left join chosen
        on
            offers.offer_id = chosen.offer_id
            and controls.customer_id = chosen.customer_id
    left join customers on controls.customer_id = customers.customer_id
    left join contact_history on controls.customer_id = contact_history.customer_id
    left join champions on controls.model_set_id = champions.model_set_id
),

-- Budget: the unsuppressed customers whose chosen arm it is, best profit per unit of budget
-- first (ties by customer_id), kept while the running count and spend fit.
budgeted as (
    select
        flagged.offer_id,
        flagged.customer_id,
        (
            candidates.max_customers is null
            or count(*) over by_value <= candidates.max_customers
        )
        and (
            candidates.max_discount_spend is null
            or sum(candidates.discount_spend) over by_value <= candidates.max_discount_spend
        ) as within_budget
    from flagged
    inner join candidates
        on
            flagged.offer_id = candidates.offer_id
            and flagged.customer_id = candidates.customer_id
            and flagged.chosen_arm = candidates.arm
    where
        flagged.exclusion_reason is null
        and not flagged.is_holdout
        and not coalesce(flagged.fails_gate, false)
    window by_value as (
        partition by flagged.offer_id, candidates.arm
        order by
            case
                when candidates.max_discount_spend is not null
                    then candidates.profit / greatest(candidates.discount_spend, 1e-9)
                else candidates.profit
            end desc,
            flagged.customer_id asc
        rows between unbounded preceding and current row
    )
),

decided as (
    select
        flagged.*,
        case
            when flagged.exclusion_reason is not null then flagged.exclusion_reason
            when flagged.chosen_arm is null
                then case when flagged.policy = 'profit' then 'no_positive_profit' else 'no_rule_matched' end
            when coalesce(flagged.fails_gate, false) then 'no_held_out_gain'
            when flagged.is_holdout then 'holdout'
            when not budgeted.within_budget then 'over_budget'
            else 'offer'
        end as reason
    from flagged
    left join budgeted
        on
            flagged.offer_id = budgeted.offer_id
            and flagged.customer_id = budgeted.customer_id
),

final as (
    select
        decided.offer_id,
        decided.customer_id,
        decided.as_of_date,
        decided.offer_family,
        decided.model_set_id,
        decided.policy,
        case
            when decided.reason in ('offer', 'holdout') then decided.chosen_arm
            else decided.control_arm
        end as arm,
        case when decided.reason in ('offer', 'holdout') then candidates.discount_pct else 0 end
            as discount_pct,
        decided.reason = 'offer' as is_offer,
        decided.is_holdout,
        case when decided.reason in ('offer', 'holdout') then candidates.profit else 0 end
            as expected_incremental_profit,
        case when decided.reason in ('offer', 'holdout') then candidates.cate_margin else 0 end
            as expected_incremental_margin,
        case when decided.reason in ('offer', 'holdout') then candidates.discount_spend else 0 end
            as expected_discount_spend,
        candidates.cate_purchase,
        candidates.p_purchase,
        case when decided.reason = 'offer' then candidates.p_purchase end as p_redeem,
        decided.reason,
        cast(segments.rfm_segment as {{ string_type() }}) as segment
    from decided
    left join candidates
        on
            decided.offer_id = candidates.offer_id
            and decided.customer_id = candidates.customer_id
            and decided.chosen_arm = candidates.arm
    left join segments on decided.customer_id = segments.customer_id
)

select * from final
