{#-
  Uplift scores: for every customer of the scoring cutoff (fct_scoring_features, product group
  `any`, the features fct_experiment_examples trains on) and every arm of each offer family's
  champion uplift model set (propensity uplift train; ml.uplift_aliases), the predicted outcomes
  under that arm and the effect against the control arm. Parts are scored by the same scoring
  UDF as the propensity models (ONNX verified by sha256 at compile time).

  - p_purchase: the two-part model's purchase probability under the arm (T-learner: its outcome
    model when the set has no revenue model);
  - cate_purchase: the purchase learner's effect (T: difference of the arm's and the control's
    outcome models; DR: its CATE regressor; class transformation: 2 P(z = 1) - 1); 0 for the
    control;
  - expected_revenue = p_purchase x E[revenue | purchase] under the arm (two-part model);
  - expected_margin = expected_revenue x (offer_margin_rate - d) / (1 - d), d the arm's
    discount_pct / 100 (null when the experiment had no discount_pct);
  - cate_revenue, cate_margin: differences with the control arm's.
  Built by cutoff as fct_propensity_scores (propensity_by_cutoff, the scoring cutoff: a re-run
  deletes the cutoff and inserts straight from the select; earlier cutoffs stay). No champion
  set: a warning, and the stored rows stay as they are.
-#}
-- depends_on: {{ ref('dim_cutoffs') }}
{{ config(
    materialized='propensity_by_cutoff',
    cutoff_roles=['scoring'],
    unique_key='as_of_date',
    on_schema_change='fail',
    tags=['scoring'],
) }}

{#- scoring_features is unused when no set is a champion (noqa ST03 below). -#}
{%- set margin_rate = var('offer_margin_rate') -%}
{%- set sets = [] -%}
{%- if execute -%}
    {%- set sets = propensity_load_uplift_champions() -%}
    {%- if sets | length == 0 -%}
        {%- do exceptions.warn(
            "fct_uplift_scores: no champion uplift model set in " ~ var('registry_schema')
            ~ ".uplift_aliases: run `propensity uplift train` first (no uplift scores built)") -%}
        {%- do model.update({'propensity_write_nothing': true}) -%}
    {%- endif -%}
    {%- for s in sets -%}
        {%- do propensity_check_feature_columns(ref('fct_scoring_features'), [{
            'model_id': s['model_set_id'], 'feature_names': s['feature_names']}]) -%}
    {%- endfor -%}
{%- endif %}

with scoring_features as not materialized (  -- noqa: ST03
    select * from {{ ref('fct_scoring_features') }}
    where product_group = 'any' and as_of_date = {{ as_of() }}
),

{% for s in sets %}
    {%- set set_index = loop.index %}
    {%- for arm, discount in s['arms'].items() %}
arm_{{ set_index }}_{{ loop.index }} as (
    select
        customer_id,
        as_of_date,
        {{ propensity_string_literal(s['offer_family']) }} as offer_family,
        {{ propensity_string_literal(s['model_set_id']) }} as model_set_id,
        {{ propensity_string_literal(arm) }} as arm,
        {{ 'true' if arm == s['control_arm'] else 'false' }} as is_control,
        cast({{ discount if discount is not none else 'null' }} as double) as discount_pct,
        {{ propensity_uplift_part(s, 'purchase_mu__' ~ arm) }} as mu_purchase,
        {%- if arm == s['control_arm'] %}
            cast(0 as double) as tau_purchase,
        {%- elif 'purchase_ct__' ~ arm in s['parts'] %}
            2 * {{ propensity_uplift_part(s, 'purchase_ct__' ~ arm) }} - 1 as tau_purchase,
        {%- else %}
            {{ propensity_uplift_part(s, 'purchase_tau__' ~ arm) }} as tau_purchase,
        {%- endif %}
        {{ propensity_uplift_part(s, 'revenue_purchase__' ~ arm) }} as p_buy,
        {{ propensity_uplift_part(s, 'revenue_revenue__' ~ arm) }} as revenue_if_purchase
    from scoring_features
),
    {%- endfor %}
{%- endfor %}

arms as (
    {%- for s in sets %}
        {%- set set_index = loop.index %}
        {%- for arm in s['arms'] %}
            select * from arm_{{ set_index }}_{{ loop.index }}
            {%- if not loop.last %}
                union all
            {%- endif %}
        {%- endfor %}
        {%- if not loop.last %}
            union all
        {%- endif %}
    {%- endfor %}
    {%- if sets | length == 0 %}
        select
            cast(null as bigint) as customer_id,
            cast(null as date) as as_of_date,
            cast(null as {{ string_type() }}) as offer_family,
            cast(null as {{ string_type() }}) as model_set_id,
            cast(null as {{ string_type() }}) as arm,
            cast(null as boolean) as is_control,
            cast(null as double) as discount_pct,
            cast(null as double) as mu_purchase,
            cast(null as double) as tau_purchase,
            cast(null as double) as p_buy,
            cast(null as double) as revenue_if_purchase
        where false
    {%- endif %}
),

outcomes as (
    select
        *,
        coalesce(p_buy, mu_purchase) as p_purchase,
        p_buy * revenue_if_purchase as expected_revenue,
        p_buy * revenue_if_purchase * ({{ margin_rate }} - discount_pct / 100)
        / (1 - discount_pct / 100) as expected_margin
    from arms
),

final as (
    select
        customer_id,
        as_of_date,
        offer_family,
        model_set_id,
        arm,
        is_control,
        discount_pct,
        p_purchase,
        expected_revenue,
        expected_margin,
        case
            when is_control then 0
            else coalesce(
                tau_purchase,
                mu_purchase - max(case when is_control then mu_purchase end)
                    over (partition by offer_family, customer_id)
            )
        end as cate_purchase,
        expected_revenue - max(case when is_control then expected_revenue end)
            over (partition by offer_family, customer_id) as cate_revenue,
        expected_margin - max(case when is_control then expected_margin end)
            over (partition by offer_family, customer_id) as cate_margin
    from outcomes
)

select * from final
