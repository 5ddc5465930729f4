{#-
  The champion uplift model set of every offer family (ml.uplift_aliases alias 'champion', schema
  dbt var registry_schema): a list of dicts {offer_family, model_set_id, learner, control_arm,
  arms: {arm: discount_pct or none}, parts: {'<role>__<arm>': model_id}, feature_names}. Every
  part's ONNX bytes are verified against their sha256 and loaded into the dbt process by the
  scoring plugin's propensity_load_model, as the propensity champions are (scoring.sql).
-#}
{% macro propensity_load_uplift_champions() %}
    {%- set schema = var('registry_schema', 'ml') -%}
    {%- set relations = {} -%}
    {%- for name in ['uplift_aliases', 'uplift_model_sets', 'uplift_model_parts'] -%}
        {%- do relations.update({name: adapter.get_relation(
            database=target.database, schema=schema, identifier=name)}) -%}
        {%- if relations[name] is none -%}
            {{ return([]) }}
        {%- endif -%}
    {%- endfor -%}
    {%- set count = run_query(
        "select count(*) from " ~ relations['uplift_aliases'] ~ " where alias = 'champion'"
    ).columns[0].values()[0] -%}
    {%- if count == 0 -%}
        {{ return([]) }}
    {%- endif -%}
    {%- do propensity_require_scoring_functions() -%}
    {%- set query -%}
        select
            aliases.offer_family,
            sets.model_set_id,
            sets.learner,
            sets.control_arm,
            sets.arms,
            parts.part,
            parts.model_id,
            propensity_load_model(parts.model_id, parts.onnx_model, parts.onnx_sha256) as model_description
        from {{ relations['uplift_aliases'] }} as aliases
        inner join {{ relations['uplift_model_sets'] }} as sets
            on aliases.model_set_id = sets.model_set_id
        inner join {{ relations['uplift_model_parts'] }} as parts
            on sets.model_set_id = parts.model_set_id
        where aliases.alias = 'champion'
        order by aliases.offer_family, parts.part
    {%- endset -%}
    {%- set by_family = {} -%}
    {%- set order = [] -%}
    {%- for row in run_query(query) -%}
        {%- if row['offer_family'] not in by_family -%}
            {%- do order.append(row['offer_family']) -%}
            {%- do by_family.update({row['offer_family']: {
                'offer_family': row['offer_family'],
                'model_set_id': row['model_set_id'],
                'learner': row['learner'],
                'control_arm': row['control_arm'],
                'arms': fromjson(row['arms']),
                'parts': {},
                'feature_names': fromjson(row['model_description'])['feature_names'],
            }}) -%}
        {%- endif -%}
        {%- do by_family[row['offer_family']]['parts'].update({row['part']: row['model_id']}) -%}
    {%- endfor -%}
    {%- set sets = [] -%}
    {%- for family in order -%}
        {%- do sets.append(by_family[family]) -%}
    {%- endfor -%}
    {{ return(sets) }}
{% endmacro %}


{#- One part's output for the rows of `relation`, or a typed null when the set has no such part. -#}
{% macro propensity_uplift_part(model_set, part) -%}
    {%- set model_id = model_set['parts'].get(part) -%}
    {%- if model_id is none -%}
        cast(null as double)
    {%- else -%}
        cast(propensity_score(
            {{ propensity_string_literal(model_id) }},
            {{ propensity_feature_array(model_set['feature_names']) }}
        ) as double)
    {%- endif -%}
{%- endmacro %}
