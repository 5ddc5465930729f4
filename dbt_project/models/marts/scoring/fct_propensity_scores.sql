{#-
  Long scores table: every customer x product group of fct_scoring_features scored by the group's
  champion model (model_aliases alias = 'champion' in the registry schema, dbt var
  registry_schema), with deciles within group and cutoff.

  Built by cutoff (materialization propensity_by_cutoff, the scoring cutoff of dim_cutoffs): a
  re-run deletes that cutoff's scores and inserts the new ones straight from this select, in one
  transaction (no temporary copy of the rows, as dbt's incremental delete+insert would keep);
  earlier cutoffs stay as history. All checks (champions exist, ONNX sha256, feature columns and
  types) run at compile time, before any statement touches this table, so a failed run leaves the
  previous scores intact. Needs the scoring.dbt_plugin plugin in profiles.yml (docs/scoring.md).

  No champion at all (a new warehouse before `propensity train`) builds no rows and logs a warning
  saying so, so `dbt build` works on a fresh warehouse and earlier cutoffs' scores are kept. Set the
  var `scoring_require_champion: true` (production schedules) to make it an error instead.
-#}
{#- Spark (docs/spark.md): the table is partitioned by as_of_date and a run overwrites the
    partitions of its cutoffs (incremental insert_overwrite), the same replacement without a
    delete; there the select is rendered once, as it writes the scores to a work table. -#}
{{ config(
    materialized='incremental' if target.type == 'spark' else 'propensity_by_cutoff',
    cutoff_roles=['scoring'],
    incremental_strategy='insert_overwrite' if target.type == 'spark' else none,
    partition_by=['as_of_date'] if target.type == 'spark' else none,
    post_hook="{{ propensity_drop_spark_scores() }}",
    unique_key='as_of_date',
    on_schema_change='fail',
    tags=['scoring'],
) }}

-- depends_on: {{ ref('dim_cutoffs') }}
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
            {#- propensity_by_cutoff then keeps the stored scores of the cutoff. -#}
            {%- do model.update({'propensity_write_nothing': true}) -%}
        {%- endif -%}
    {%- endif -%}
    {%- do propensity_check_feature_columns(features_relation, champions) -%}
{%- endif %}

{#- Not materialized: each group's CTE reads only its rows of the view (DuckDB would otherwise
    copy every group's features once, as the CTE has one reader per champion). #}
with scoring_features as {{ cte_hint('not materialized') }}(
    select * from {{ features_relation }}
    {%- if target.type != 'spark' %}
        where as_of_date = {{ as_of() }}
    {%- endif %}
),

champions as (
    {% if champions -%}
        {%- for champion in champions %}
    select
        {{ loop.index }} as group_index,
        cast({{ propensity_string_literal(champion['product_group']) }} as {{ string_type() }}) as product_group,
        cast({{ propensity_string_literal(champion['model_id']) }} as {{ string_type() }}) as model_id
            {%- if not loop.last %}
    union all
            {%- endif %}
        {%- endfor %}
    {%- else -%}
        select
            0 as group_index,
            cast(null as {{ string_type() }}) as product_group,
            cast(null as {{ string_type() }}) as model_id
        where false
    {%- endif %}
),

{#- Each group's rows carry the group's position in `champions` (an integer), and the cutoff is
    a literal: the decile steps below group and join on integers, not on the group's name and the
    date, and the name is attached once at the end. Not on Spark, whose scores come from the work
    table below: dbt-spark's incremental run inserts from a temporary view, and Spark resolves in
    it only the temporary functions the view's plan used, so an unused call of propensity_score
    in these CTEs failed every re-run of a cutoff ("Cannot resolve function"). -#}
{% for champion in (champions if target.type != 'spark' else []) %}
scores_{{ loop.index }} as (
    select
        scoring_features.customer_id,
        {{ loop.index }} as group_index,
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
            select
                spark_scores.customer_id,
                champions.group_index,
                spark_scores.score
            from {{ propensity_spark_scores(features_relation, champions) }} as spark_scores
            inner join champions on spark_scores.product_group = champions.product_group
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
                0 as group_index,
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
        group_index,
        score_bin,
        count(*) as bin_rows
    from scores
    group by group_index, score_bin
),

{# sum() of a bigint is a hugeint (int128): cast back, or every rank computation below runs in
   128-bit division. #}
bin_ranks as (
    select
        group_index,
        score_bin,
        bin_rows,
        cast(coalesce(sum(bin_rows) over (
            partition by group_index
            order by score_bin desc
            rows between unbounded preceding and 1 preceding
        ), 0) as bigint) as rows_before,
        cast(sum(bin_rows) over (partition by group_index) as bigint) as group_rows
    from bin_counts
),

bin_deciles as (
    select
        group_index,
        score_bin,
        rows_before,
        group_rows,
        {{ propensity_ntile_decile('rows_before', 'group_rows') }} as first_decile,
        {{ propensity_ntile_decile('rows_before + bin_rows - 1', 'group_rows') }} as last_decile
    from bin_ranks
),

{# Not materialized: read by both branches below; the join is cheaper than a copy of the rows.
   Spark's hint broadcasts the bins (at most 2^16 per group, whatever the customers) instead of
   shuffling and sorting every score row for a sort-merge join: the statement took 15.5-16.5 s
   instead of 19.6-23.5 s at 1M customers x 10 groups, identical rows. DuckDB reads a comment. #}
binned_scores as {{ cte_hint('not materialized') }}(
    select /*+ BROADCAST(bin_deciles) */
        scores.customer_id,
        scores.group_index,
        scores.score,
        scores.score_bin,
        bin_deciles.rows_before,
        bin_deciles.group_rows,
        bin_deciles.first_decile,
        bin_deciles.last_decile
    from scores
    inner join bin_deciles
        on
            scores.group_index = bin_deciles.group_index
            and scores.score_bin = bin_deciles.score_bin
),

settled_deciles as (
    select
        customer_id,
        group_index,
        score,
        first_decile as decile
    from binned_scores
    where first_decile = last_decile
),

{# Rows of a bin holding a decile boundary: ranked within the bin (few rows unless many tie). #}
straddling_deciles as (
    select
        customer_id,
        group_index,
        score,
        {{ propensity_ntile_decile(
            'rows_before + row_number() over (partition by group_index, score_bin '
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

final as (
    select
        deciles.customer_id,
        champions.product_group,
        {{ as_of() }} as as_of_date,
        champions.model_id,
        deciles.score,
        cast(deciles.decile as integer) as decile,
        cast(current_timestamp as timestamp) as scored_at
    from deciles
    inner join champions
        on deciles.group_index = champions.group_index
)

select * from final
