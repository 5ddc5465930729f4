{#-
  Long scores table: every customer x product group of fct_scoring_features scored by the group's
  champion model (ml.model_aliases alias = 'champion'), with deciles within group and cutoff.

  Incremental, delete+insert on as_of_date: re-running a cutoff replaces that cutoff's scores,
  earlier cutoffs stay as history. All checks (champions exist, ONNX sha256, feature columns and
  types) run at compile time, before any statement touches this table, so a failed run leaves the
  previous scores intact. Needs the scoring.dbt_plugin plugin in profiles.yml (docs/scoring.md).

  No champion at all (a new warehouse before `propensity train`) builds no rows and logs a warning
  saying so, so `dbt build` works on a fresh warehouse and earlier cutoffs' scores are kept. Set the
  var `scoring_require_champion: true` (production schedules) to make it an error instead.
-#}
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key=['as_of_date'],
    on_schema_change='fail',
    tags=['scoring'],
) }}

{%- set features_relation = ref('fct_scoring_features') -%}
{%- set champions = [] -%}
{%- if execute -%}
    {%- set champions = propensity_load_champions() -%}
    {%- if champions | length == 0 -%}
        {%- set no_champion = "fct_propensity_scores: no champion model in ml.model_aliases: run "
            ~ "`propensity train` first, then `dbt run --select fct_propensity_scores`" -%}
        {%- if var('scoring_require_champion', false) and flags.WHICH in ['run', 'build', 'retry'] -%}
            {{ exceptions.raise_compiler_error(no_champion) }}
        {%- else -%}
            {%- do exceptions.warn(no_champion ~ " (no scores built)") -%}
        {%- endif -%}
    {%- endif -%}
    {%- do propensity_check_feature_columns(features_relation, champions) -%}
{%- endif %}

with scoring_features as (
    select * from {{ features_relation }}
),

{% for champion in champions %}
scores_{{ loop.index }} as (
    select
        scoring_features.customer_id,
        scoring_features.product_group,
        scoring_features.as_of_date,
        cast({{ propensity_string_literal(champion['model_id']) }} as varchar) as model_id,
        cast(
            propensity_score(
                {{ propensity_string_literal(champion['model_id']) }},
                {{ propensity_feature_array(champion['feature_names']) }}
            ) as double
        ) as score
    from scoring_features
    where scoring_features.product_group = {{ propensity_string_literal(champion['product_group']) }}
),

{% endfor %}
scores as (
    {% if champions -%}
        {%- for champion in champions %}
    select * from scores_{{ loop.index }}
            {%- if not loop.last %}
    union all
            {%- endif %}
        {%- endfor %}
    {%- else -%}
        select
            scoring_features.customer_id,
            scoring_features.product_group,
            scoring_features.as_of_date,
            cast(null as varchar) as model_id,
            cast(null as double) as score
        from scoring_features
        where false
    {%- endif %}
),

final as (
    select
        customer_id,
        product_group,
        as_of_date,
        model_id,
        score,
        cast(ntile(10) over (
            partition by product_group, as_of_date
            order by score desc, customer_id asc
        ) as integer) as decile,
        cast(current_timestamp as timestamp) as scored_at
    from scores
)

select * from final
