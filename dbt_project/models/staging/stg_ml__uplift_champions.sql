{#- The champion uplift model set of each offer family with its held-out policy value (the
    incremental margin per customer the `profit` policy earned on the held-out share of the
    experiment against no offer, with its 95 % interval; null without margins). -#}
with aliases as (
    select * from {{ source('ml', 'uplift_aliases') }}
    where alias = 'champion'
),

sets as (
    select * from {{ source('ml', 'uplift_model_sets') }}
),

final as (
    select
        aliases.offer_family,
        sets.model_set_id,
        sets.learner,
        sets.held_out_policy_value,
        sets.held_out_policy_value_ci_lower,
        sets.held_out_policy_value_ci_upper
    from aliases
    inner join sets on aliases.model_set_id = sets.model_set_id
)

select * from final
