{#-
  Incremental profit by policy, per offer of fct_offer_assignments: the offer itself against the
  simple policies a team would otherwise run on the same customers and arms, with the expected
  profit (the model's cate_margin minus the cost per contact, summed over the customers the
  policy offers an arm) and, on generated warehouses (stg_raw__oracle_offer_effects has rows), the
  true profit (the true margin effect instead of cate_margin) and the oracle policy (each
  customer's arm with the highest true profit, if positive).

  Policies: 'offer' (fct_offer_assignments, customers with is_offer), 'nobody',
  'everyone_<arm>' for each arm of the offer, 'top_propensity_decile_<arm>' (the first decile of
  the `any` propensity scores gets the offer's largest discount), 'oracle'.
-#}
with assignments as (
    select * from {{ ref('fct_offer_assignments') }}
),

config as (
    select * from {{ ref('stg_raw__offer_config') }}
),

scores as (
    select * from {{ ref('fct_uplift_scores') }}
    where as_of_date = (select max(assignments.as_of_date) from assignments)
),

propensity as (
    select * from {{ ref('fct_propensity_scores') }}
    where
        product_group = 'any'
        and as_of_date = (select max(assignments.as_of_date) from assignments)
),

truth as (
    select
        customer_id,
        arm,
        margin_effect
    from {{ ref('stg_raw__oracle_offer_effects') }}
    where as_of_date = (select max(assignments.as_of_date) from assignments)
),

has_truth as (
    select count(*) > 0 as has_truth from truth
),

offers as (
    select distinct
        offer_id,
        offer_family
    from assignments
),

arm_discounts as (
    select distinct
        offer_family,
        arm,
        discount_pct
    from scores
),

largest_arm as (
    select
        config.offer_id,
        arg_max(config.arm, arm_discounts.discount_pct) as arm
    from config
    inner join arm_discounts
        on config.offer_family = arm_discounts.offer_family and config.arm = arm_discounts.arm
    group by config.offer_id
),

-- (policy, customer, arm) for every customer a policy gives a treated arm.
policies as (
    select
        offer_id,
        'offer' as policy,
        customer_id,
        arm
    from assignments
    where is_offer
    union all
    select
        config.offer_id,
        'everyone_' || config.arm as policy,
        scores.customer_id,
        config.arm
    from config
    inner join scores
        on config.offer_family = scores.offer_family and config.arm = scores.arm
    union all
    select
        largest_arm.offer_id,
        'top_propensity_decile_' || largest_arm.arm as policy,
        propensity.customer_id,
        largest_arm.arm
    from largest_arm
    cross join propensity
    where propensity.decile = 1
    union all
    select
        config.offer_id,
        'oracle' as policy,
        truth.customer_id,
        arg_max(config.arm, truth.margin_effect - config.cost_per_contact) as arm
    from config
    inner join offers on config.offer_id = offers.offer_id
    inner join truth on config.arm = truth.arm
    where truth.margin_effect - config.cost_per_contact > 0
    group by config.offer_id, truth.customer_id
),

valued as (
    select
        policies.offer_id,
        policies.policy,
        policies.customer_id,
        scores.cate_margin - config.cost_per_contact as expected_profit,
        truth.margin_effect - config.cost_per_contact as true_profit
    from policies
    inner join offers on policies.offer_id = offers.offer_id
    inner join config
        on policies.offer_id = config.offer_id and policies.arm = config.arm
    inner join scores
        on
            offers.offer_family = scores.offer_family
            and policies.customer_id = scores.customer_id
            and policies.arm = scores.arm
    left join truth
        on policies.customer_id = truth.customer_id and policies.arm = truth.arm
),

-- Every offer has its 'offer' and 'nobody' rows, with 0 customers when nothing is offered.
always as (
    select
        offers.offer_id,
        policies.policy,
        case when has_truth.has_truth then 0 end as true_profit
    from offers
    cross join (values ('offer'), ('nobody')) as policies (policy)
    cross join has_truth
),

summed as (
    select
        always.offer_id,
        always.policy,
        count(valued.customer_id) as customers_offered,
        coalesce(sum(valued.expected_profit), 0) as expected_profit,
        coalesce(sum(valued.true_profit), always.true_profit) as true_profit
    from always
    left join valued
        on always.offer_id = valued.offer_id and always.policy = valued.policy
    group by always.offer_id, always.policy, always.true_profit
    union all
    select
        offer_id,
        policy,
        count(*) as customers_offered,
        sum(expected_profit) as expected_profit,
        -- null without the oracle table (no truth row joins)
        sum(true_profit) as true_profit
    from valued
    where policy not in ('offer', 'nobody')
    group by offer_id, policy
),

final as (
    select
        summed.offer_id,
        (select max(assignments.as_of_date) from assignments) as as_of_date,
        cast(summed.policy as {{ string_type() }}) as policy,
        cast(summed.customers_offered as bigint) as customers_offered,
        cast(summed.expected_profit as double) as expected_profit,
        cast(summed.true_profit as double) as true_profit
    from summed
)

select * from final
