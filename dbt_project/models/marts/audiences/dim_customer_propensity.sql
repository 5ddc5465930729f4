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
{%- set scores_exist = false -%}
{%- if execute -%}
    {%- set existing = adapter.get_relation(
        database=scores_relation.database,
        schema=scores_relation.schema,
        identifier=scores_relation.identifier,
    ) -%}
    {%- set scores_exist = existing is not none -%}
    {%- if scores_exist -%}
        {%- set found = run_query(
            "select distinct product_group from " ~ existing
            ~ " where as_of_date = (select max(as_of_date) from " ~ existing ~ ")"
            ~ " order by product_group"
        ) -%}
        {%- for group in found.columns[0].values() -%}
            {%- if not modules.re.match('^[a-z][a-z0-9_]{0,39}$', group | string) -%}
                {{ exceptions.raise_compiler_error(
                    "dim_customer_propensity: product group '" ~ group ~ "' in " ~ existing
                    ~ " is not a lowercase identifier (1-40 of a-z, 0-9, _), so it cannot become a"
                    ~ " column name. Rename the group (`propensity groups set`) and retrain."
                ) }}
            {%- endif -%}
            {%- do groups.append(group | string) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endif %}

with scores as (
    {%- if scores_exist %}
        select * from {{ scores_relation }}
    {%- else %}
        select
            cast(null as bigint) as customer_id,
            cast(null as {{ string_type() }}) as product_group,
            cast(null as date) as as_of_date,
            cast(null as double) as score,
            cast(null as integer) as decile
        where false
    {%- endif %}
),

latest_cutoff as (
    select max(as_of_date) as as_of_date from scores
),

latest_scores as (
    select
        scores.customer_id,
        scores.product_group,
        scores.as_of_date,
        scores.score,
        scores.decile
    from scores
    inner join latest_cutoff on scores.as_of_date = latest_cutoff.as_of_date
),

{# One pass over the cutoff's scores: a column per group, then the best group from those columns
   (no window over the score rows, no join back: at 10M customers x 11 groups the ranked rows and
   their join took 70 s). The CASE takes the first group in name order whose score equals the
   highest, so ties go to the group name first alphabetically. #}
wide as (
    select
        customer_id,
        as_of_date,
        {%- for group in groups %}
        max(case when product_group = '{{ group }}' then score end) as {{ adapter.quote('score_' ~ group) }},
        {%- endfor %}
        {%- for group in groups %}
        max(case when product_group = '{{ group }}' then decile end) as {{ adapter.quote('decile_' ~ group) }},
        {%- endfor %}
        count(*) as scored_group_count
    from latest_scores
    group by customer_id, as_of_date
),

{%- set ranked = groups | reject('equalto', 'any') | list %}

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
