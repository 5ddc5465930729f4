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

ranked_groups as (
    select
        customer_id,
        product_group,
        score,
        row_number() over (
            partition by customer_id
            order by score desc, product_group asc
        ) as group_rank
    from latest_scores
    where product_group != 'any'
),

best_group as (
    select
        customer_id,
        product_group as best_product_group,
        score as best_score
    from ranked_groups
    where group_rank = 1
),

final as (
    select
        wide.customer_id,
        wide.as_of_date,
        {%- for group in groups %}
        wide.{{ adapter.quote('score_' ~ group) }},
        {%- endfor %}
        {%- for group in groups %}
        wide.{{ adapter.quote('decile_' ~ group) }},
        {%- endfor %}
        best_group.best_product_group,
        cast(best_group.best_score as double) as best_score
    from wide
    left join best_group on wide.customer_id = best_group.customer_id
)

select * from final
