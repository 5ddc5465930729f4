{#-
  The wide per-customer profile: one row per customer scored at the latest as_of_date of
  fct_propensity_scores, one score_<group> and decile_<group> column per product group scored at
  that date, and the best product group (highest score, `any` left out, ties to the group name
  first alphabetically).

  The group list is read from the scores table at compile time, so the columns follow the groups
  that have champions. Group names are restricted identifiers (models_py/ingest/_groups.py), checked again
  here before they become column names. With no scores yet (a new warehouse, or the scores table
  not built) the model builds an empty table with the fixed columns only.
-#}
{%- set scores_relation = ref('fct_propensity_scores') -%}
{%- set groups = [] -%}
{%- set latest = none -%}
{%- if execute -%}
    {%- set existing = adapter.get_relation(
        database=scores_relation.database,
        schema=scores_relation.schema,
        identifier=scores_relation.identifier,
    ) -%}
    {%- if existing is not none -%}
        {%- set found = run_query(
            "select distinct product_group, as_of_date from " ~ existing
            ~ " where as_of_date = (select max(as_of_date) from " ~ existing ~ ")"
            ~ " order by product_group"
        ) -%}
        {%- for row in found.rows -%}
            {%- set group = row[0] -%}
            {%- if not modules.re.match('^[a-z][a-z0-9_]{0,39}$', group | string) -%}
                {{ exceptions.raise_compiler_error(
                    "dim_customer_propensity: product group '" ~ group ~ "' in " ~ existing
                    ~ " is not a lowercase identifier (1-40 of a-z, 0-9, _), so it cannot become a"
                    ~ " column name. Rename the group (`propensity groups set`) and retrain."
                ) }}
            {%- endif -%}
            {%- do groups.append(group | string) -%}
        {%- endfor -%}
        {%- if found.rows | length > 0 -%}
            {%- set latest = found.rows[0][1] -%}
        {%- endif -%}
    {%- endif -%}
{%- endif %}

{#- One read of the cutoff's scores per group, the groups joined on the customer (full joins: a
    customer scored in some groups only keeps its row). No aggregate of the score rows and no
    window over them: at 10M customers x 11 groups the joins took 9-11 s where one
    group-by-customer pivot took 31-35 s and ranking the rows then joining back 64-70 s
    (docs/benchmarks.md, section scale). The cutoff is read when dbt compiles the model, after
    fct_propensity_scores ran, as are the groups. #}
with
{%- for group in groups %}
scores_{{ loop.index }} as (
    select
        customer_id,
        score,
        decile
    from {{ scores_relation }}
    where
        as_of_date = {{ propensity_date_literal(latest) }}
        and product_group = '{{ group }}'
),
{% endfor %}

wide as (
    {%- if groups %}
    select
        coalesce({% for group in groups %}scores_{{ loop.index }}.customer_id{{ ", " if not loop.last }}{% endfor %})
            as customer_id,
        {{ propensity_date_literal(latest) }} as as_of_date,
        {%- for group in groups %}
        scores_{{ loop.index }}.score as {{ adapter.quote('score_' ~ group) }},
        {%- endfor %}
        {%- for group in groups %}
        scores_{{ loop.index }}.decile as {{ adapter.quote('decile_' ~ group) }}{{ "," if not loop.last }}
        {%- endfor %}
    from scores_1
    {%- for group in groups[1:] %}
    full join scores_{{ loop.index + 1 }}
        on scores_{{ loop.index + 1 }}.customer_id = coalesce(
            {%- for k in range(loop.index) %}scores_{{ k + 1 }}.customer_id{{ ", " if not loop.last }}{% endfor %})
    {%- endfor %}
    {%- else %}
        {#- No scores yet (a new warehouse, or the scores table not built): the fixed columns only. #}
        select
            cast(null as bigint) as customer_id,
            cast(null as date) as as_of_date
        where false
    {%- endif %}
),

{%- set ranked = groups | reject('equalto', 'any') | list %}

{# The best group from the wide columns: the CASE takes the first group in name order whose
   score equals the highest, so ties go to the group name first alphabetically. #}
best as (
    select
        *,
        {%- if ranked | length == 0 %}
            cast(null as double) as best_score
        {%- elif ranked | length == 1 %}
        {{ adapter.quote('score_' ~ ranked[0]) }} as best_score
        {%- else %}
        greatest(
            {%- for group in ranked %}
            {{ adapter.quote('score_' ~ group) }}{{ "," if not loop.last }}
            {%- endfor %}
        ) as best_score
        {%- endif %}
    from wide
),

final as (
    select
        customer_id,
        as_of_date,
        {%- for group in groups %}
        {{ adapter.quote('score_' ~ group) }},
        {%- endfor %}
        {%- for group in groups %}
        {{ adapter.quote('decile_' ~ group) }},
        {%- endfor %}
        {%- if ranked | length == 0 %}
            cast(null as {{ string_type() }}) as best_product_group,
        {%- else %}
        case
            {%- for group in ranked %}
            when {{ adapter.quote('score_' ~ group) }} = best_score then '{{ group }}'
            {%- endfor %}
        end as best_product_group,
        {%- endif %}
        cast(best_score as double) as best_score
    from best
)

select * from final
