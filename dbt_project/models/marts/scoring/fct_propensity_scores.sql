{#-
  Long scores table: every customer x product group of fct_scoring_features scored by the group's
  champion model (model_aliases alias = 'champion' in the registry schema, dbt var
  registry_schema), with deciles within group and cutoff.

  Incremental, delete+insert on as_of_date: re-running a cutoff replaces that cutoff's scores,
  earlier cutoffs stay as history. All checks (champions exist, ONNX sha256, feature columns and
  types) run at compile time, before any statement touches this table, so a failed run leaves the
  previous scores intact. Needs the scoring.dbt_plugin plugin in profiles.yml (docs/scoring.md).

  No champion at all (a new warehouse before `propensity train`) builds no rows and logs a warning
  saying so, so `dbt build` works on a fresh warehouse and earlier cutoffs' scores are kept. Set the
  var `scoring_require_champion: true` (production schedules) to make it an error instead.
-#}
{#- Spark (docs/spark.md): the table is partitioned by as_of_date and a run overwrites the
    partitions of its cutoffs (insert_overwrite), the same replacement without a delete. -#}
{{ config(
    materialized='incremental',
    incremental_strategy='insert_overwrite' if target.type == 'spark' else 'delete+insert',
    partition_by=['as_of_date'] if target.type == 'spark' else none,
    post_hook="{{ propensity_drop_spark_scores() }}",
    unique_key='as_of_date',
    on_schema_change='fail',
    tags=['scoring'],
) }}

{%- set features_relation = ref('fct_scoring_features') -%}
{%- set champions = [] -%}
{%- if execute -%}
    {%- set champions = propensity_load_champions() -%}
    {%- if champions | length == 0 -%}
        {%- set no_champion = "fct_propensity_scores: no champion model in "
            ~ var('registry_schema') ~ ".model_aliases: run "
            ~ "`propensity train` first, then `dbt run --select fct_propensity_scores`" -%}
        {%- if var('scoring_require_champion', false) and flags.WHICH in ['run', 'build', 'retry'] -%}
            {{ exceptions.raise_compiler_error(no_champion) }}
        {%- else -%}
            {%- do exceptions.warn(no_champion ~ " (no scores built)") -%}
        {%- endif -%}
    {%- endif -%}
    {%- do propensity_check_feature_columns(features_relation, champions) -%}
{%- endif %}

{#- Not materialized: each group's CTE reads only its rows of the view (DuckDB would otherwise
    copy every group's features once, as the CTE has one reader per champion). #}
with scoring_features as {{ cte_hint('not materialized') }}(
    select * from {{ features_relation }}
),

{% for champion in champions %}
scores_{{ loop.index }} as (
    select
        scoring_features.customer_id,
        scoring_features.product_group,
        scoring_features.as_of_date,
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
{# Materialized: read twice below (bin counts, then the rows), the UDF runs once per row. #}
scores as {{ cte_hint('materialized') }}(
    select
        *,
        {{ propensity_score_bin('score') }} as score_bin
    from (
        {% if target.type == 'spark' -%}
            {#- Spark (docs/spark.md): champions sharing a feature list scored in one pass, into
                a work table (Spark has no materialized CTE: each reader would rerun the UDF). -#}
            select * from {{ propensity_spark_scores(features_relation, champions) }}
        {%- elif champions -%}
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
                cast(null as double) as score
            from scoring_features
            where false
        {%- endif %}
    ) as all_scores
),

{#
  Deciles = ntile(10) over (partition by product_group, as_of_date order by score desc,
  customer_id asc), without sorting every row: rows are counted per score bin (a monotone
  function of the score), a running sum over the few bins gives each bin's first rank, and only
  the rows of a bin that straddles a decile boundary are ranked one by one.
-#}
bin_counts as (
    select
        product_group,
        as_of_date,
        score_bin,
        count(*) as bin_rows
    from scores
    group by product_group, as_of_date, score_bin
),

{# sum() of a bigint is a hugeint (int128): cast back, or every rank computation below runs in
   128-bit division. #}
bin_ranks as (
    select
        product_group,
        as_of_date,
        score_bin,
        bin_rows,
        cast(coalesce(sum(bin_rows) over (
            partition by product_group, as_of_date
            order by score_bin desc
            rows between unbounded preceding and 1 preceding
        ), 0) as bigint) as rows_before,
        cast(sum(bin_rows) over (partition by product_group, as_of_date) as bigint) as group_rows
    from bin_counts
),

bin_deciles as (
    select
        product_group,
        as_of_date,
        score_bin,
        rows_before,
        group_rows,
        {{ propensity_ntile_decile('rows_before', 'group_rows') }} as first_decile,
        {{ propensity_ntile_decile('rows_before + bin_rows - 1', 'group_rows') }} as last_decile
    from bin_ranks
),

{# Not materialized: read by both branches below; the join is cheaper than a copy of the rows. #}
binned_scores as {{ cte_hint('not materialized') }}(
    select
        scores.customer_id,
        scores.product_group,
        scores.as_of_date,
        scores.score,
        scores.score_bin,
        bin_deciles.rows_before,
        bin_deciles.group_rows,
        bin_deciles.first_decile,
        bin_deciles.last_decile
    from scores
    inner join bin_deciles
        on
            scores.product_group = bin_deciles.product_group
            and scores.as_of_date = bin_deciles.as_of_date
            and scores.score_bin = bin_deciles.score_bin
),

settled_deciles as (
    select
        customer_id,
        product_group,
        as_of_date,
        score,
        first_decile as decile
    from binned_scores
    where first_decile = last_decile
),

{# Rows of a bin holding a decile boundary: ranked within the bin (few rows unless many tie). #}
straddling_deciles as (
    select
        customer_id,
        product_group,
        as_of_date,
        score,
        {{ propensity_ntile_decile(
            'rows_before + row_number() over (partition by product_group, as_of_date, score_bin '
            ~ 'order by score desc, customer_id asc) - 1',
            'group_rows'
        ) }} as decile
    from binned_scores
    where first_decile <> last_decile
),

deciles as (
    select * from settled_deciles
    union all
    select * from straddling_deciles
),

champions as (
    {% if champions -%}
        {%- for champion in champions %}
    select
        {{ propensity_string_literal(champion['product_group']) }} as product_group,
        {{ propensity_string_literal(champion['model_id']) }} as model_id
            {%- if not loop.last %}
    union all
            {%- endif %}
        {%- endfor %}
    {%- else -%}
        select
            cast(null as {{ string_type() }}) as product_group,
            cast(null as {{ string_type() }}) as model_id
        where false
    {%- endif %}
),

final as (
    select
        deciles.customer_id,
        deciles.product_group,
        deciles.as_of_date,
        cast(champions.model_id as {{ string_type() }}) as model_id,
        deciles.score,
        cast(deciles.decile as integer) as decile,
        cast(current_timestamp as timestamp) as scored_at
    from deciles
    inner join champions
        on deciles.product_group = champions.product_group
)

select * from final
