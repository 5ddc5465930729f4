{#-
  Macros of the scoring model (models/marts/scoring/fct_propensity_scores.sql).

  The champions are read at compile time: `propensity_load_model` (a UDF of the scoring.dbt_plugin
  dbt-duckdb plugin) verifies each champion's ONNX bytes against the registered sha256, caches an
  onnxruntime session in the dbt process and returns the model's feature names from its ONNX
  metadata. The model SQL then calls `propensity_score(model_id, <feature array>)` per product
  group. Every check raises before any SQL touches the scores table, so a failed run leaves the
  previous scores as they were.
-#}

{#- A SQL string literal (single quotes doubled). -#}
{% macro propensity_string_literal(value) -%}
    '{{ value | string | replace("'", "''") }}'
{%- endmacro %}


{#- The feature vector of one row as a float array, columns in the model's order. -#}
{% macro propensity_feature_array(columns) -%}
    {{ return(adapter.dispatch('propensity_feature_array', 'propensity')(columns)) }}
{%- endmacro %}

{% macro default__propensity_feature_array(columns) -%}
    array(
    {%- for column in columns %}cast({{ adapter.quote(column) }} as float){% if not loop.last %}, {% endif %}{% endfor -%}
    )
{%- endmacro %}

{#- Spark: the features as separate float arguments (scoring/_spark.py: one float32 column each). -#}
{% macro spark__propensity_feature_array(columns) -%}
    {%- for column in columns %}cast({{ adapter.quote(column) }} as float){% if not loop.last %}, {% endif %}{% endfor -%}
{%- endmacro %}

{#- A FLOAT[] list (the UDF's parameter type: no array-to-list cast), each column cast once. -#}
{% macro duckdb__propensity_feature_array(columns) -%}
    [
    {%- for column in columns %}cast({{ adapter.quote(column) }} as float){% if not loop.last %}, {% endif %}{% endfor -%}
    ]
{%- endmacro %}


{#- True when a column type (as the adapter reports it) can be cast to a float feature. The list is
    scoring.FEATURE_TYPES (DuckDB's canonical names, lower case); tests/scoring/test_types.py
    checks that the two agree. -#}
{% macro propensity_is_numeric_type(data_type) -%}
    {{ return(adapter.dispatch('propensity_is_numeric_type', 'propensity')(data_type)) }}
{%- endmacro %}

{% macro spark__propensity_is_numeric_type(data_type) -%}
    {%- set base = (data_type | string | lower).split('(')[0] | trim -%}
    {{ return(base in ['boolean', 'tinyint', 'smallint', 'int', 'bigint', 'float', 'double', 'decimal']) }}
{%- endmacro %}

{% macro default__propensity_is_numeric_type(data_type) -%}
    {%- set base = (data_type | string | lower).split('(')[0] | trim -%}
    {{ return(base in [
        'boolean', 'tinyint', 'smallint', 'integer', 'bigint', 'hugeint',
        'utinyint', 'usmallint', 'uinteger', 'ubigint', 'uhugeint', 'float', 'double', 'decimal',
    ]) }}
{%- endmacro %}


{#-
  The champion of every product group trained on `var('scoring_training_relation')` (default
  marts.fct_training_examples): a list of dicts (product_group, model_id, feature_names),
  each model verified and loaded into the dbt process. Raises a compiler error naming the model
  when its bytes fail the sha256 check or its metadata do not match the registry.
-#}
{% macro propensity_load_champions() %}
    {%- set schema = var('registry_schema', 'ml') -%}
    {%- set aliases_relation = adapter.get_relation(database=target.database, schema=schema, identifier='model_aliases') -%}
    {%- set registry_relation = adapter.get_relation(database=target.database, schema=schema, identifier='model_registry') -%}
    {%- if aliases_relation is none or registry_relation is none -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set champion_count = run_query(
        "select count(*) from " ~ aliases_relation ~ " where alias = 'champion'"
    ).columns[0].values()[0] -%}
    {%- if champion_count == 0 -%}
        {{ return([]) }}
    {%- endif -%}
    {%- do propensity_require_scoring_functions() -%}
    {#- Champions of other specs (bring-your-own tables, e.g. a campaign-response model) are scored
        by `propensity score`, not here: their features are not columns of fct_scoring_features. -#}
    {%- set training_relation = var('scoring_training_relation', 'marts.fct_training_examples') -%}
    {%- set query -%}
        select
            aliases.product_group,
            aliases.model_id,
            registry.model_id is not null as is_registered,
            case
                when registry.model_id is not null
                    then propensity_load_model(registry.model_id, registry.onnx_model, registry.onnx_sha256)
            end as model_description
        from {{ aliases_relation }} as aliases
        left join {{ registry_relation }} as registry
            on aliases.model_id = registry.model_id
        where
            aliases.alias = 'champion'
            and (registry.model_id is null or registry.training_relation = '{{ training_relation | replace("'", "''") }}')
        order by aliases.product_group
    {%- endset -%}
    {%- set rows = run_query(query) -%}
    {%- set champions = [] -%}
    {%- set seen = {} -%}
    {%- for row in rows -%}
        {%- if not row['is_registered'] -%}
            {{ exceptions.raise_compiler_error(
                "fct_propensity_scores: the champion of product group '" ~ row['product_group']
                ~ "' is model '" ~ row['model_id'] ~ "', which is not in " ~ registry_relation
                ~ ". Promote a registered model (`propensity models promote`) or retrain."
            ) }}
        {%- endif -%}
        {%- if row['product_group'] in seen -%}
            {{ exceptions.raise_compiler_error(
                "fct_propensity_scores: product group '" ~ row['product_group'] ~ "' has several champions ('"
                ~ seen[row['product_group']] ~ "', '" ~ row['model_id'] ~ "') in " ~ aliases_relation
                ~ "; keep one alias row per group."
            ) }}
        {%- endif -%}
        {%- do seen.update({row['product_group']: row['model_id']}) -%}
        {%- set described = fromjson(row['model_description']) -%}
        {%- if described['product_group'] and described['product_group'] != row['product_group'] -%}
            {{ exceptions.raise_compiler_error(
                "fct_propensity_scores: model '" ~ row['model_id'] ~ "' was trained for product group '"
                ~ described['product_group'] ~ "' but is the champion of '" ~ row['product_group'] ~ "'."
            ) }}
        {%- endif -%}
        {%- do champions.append({
            'product_group': row['product_group'],
            'model_id': row['model_id'],
            'feature_names': described['feature_names'],
        }) -%}
    {%- endfor -%}
    {{ return(champions) }}
{% endmacro %}


{#- The UDFs come from the scoring.dbt_plugin plugin: say so when profiles.yml lacks it. -#}
{% macro propensity_require_scoring_functions() %}
    {{ return(adapter.dispatch('propensity_require_scoring_functions', 'propensity')()) }}
{% endmacro %}

{% macro default__propensity_require_scoring_functions() %}
{% endmacro %}

{% macro duckdb__propensity_require_scoring_functions() %}
    {%- set found = run_query(
        "select count(*) from duckdb_functions() where function_name in "
        ~ "('propensity_load_model', 'propensity_score')"
    ).columns[0].values()[0] -%}
    {%- if found < 2 -%}
        {{ exceptions.raise_compiler_error(
            "fct_propensity_scores: the SQL functions propensity_load_model / propensity_score are not "
            ~ "registered. Add the scoring plugin to your dbt profile (profiles.yml, under the duckdb "
            ~ "output): `plugins: [{module: scoring.dbt_plugin}]` (see docs/scoring.md)."
        ) }}
    {%- endif -%}
{% endmacro %}


{#-
  Every feature of every champion must be a numeric column of `relation`; otherwise raise one
  compiler error listing each missing or mistyped column with the model that needs it.
-#}
{% macro propensity_check_feature_columns(relation, champions) %}
    {%- set by_name = {} -%}
    {%- for column in adapter.get_columns_in_relation(relation) -%}
        {%- do by_name.update({column.name | lower: column}) -%}
    {%- endfor -%}
    {%- set problems = [] -%}
    {%- for champion in champions -%}
        {%- for name in champion['feature_names'] -%}
            {%- set column = by_name.get(name | lower) -%}
            {%- if column is none -%}
                {%- do problems.append(
                    "column '" ~ name ~ "' is missing (needed by model '" ~ champion['model_id']
                    ~ "', product group '" ~ champion['product_group'] ~ "')") -%}
            {%- elif not propensity_is_numeric_type(column.dtype) -%}
                {%- do problems.append(
                    "column '" ~ name ~ "' has type " ~ column.dtype ~ ", not a number (needed by model '"
                    ~ champion['model_id'] ~ "', product group '" ~ champion['product_group'] ~ "')") -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- if problems -%}
        {{ exceptions.raise_compiler_error(
            "fct_propensity_scores: the features in " ~ relation ~ " do not match the champion models: "
            ~ problems | join('; ')
            ~ ". Previous scores are unchanged. Rebuild the features or retrain the models on the current feature set."
        ) }}
    {%- endif -%}
{% endmacro %}


{#-
  The ntile(10) bucket (1 = first) of the row at 0-based rank `rank` among `rows` rows: like
  ntile, the first rows % 10 buckets hold one row more than the others.
-#}
{% macro propensity_ntile_decile(rank, rows) -%}
    {%- set div = int_div_operator() -%}
    (case
        when ({{ rank }}) < ({{ rows }}) % 10 * (({{ rows }}) {{ div }} 10 + 1)
            then ({{ rank }}) {{ div }} (({{ rows }}) {{ div }} 10 + 1) + 1
        else ({{ rows }}) % 10
            + (({{ rank }}) - ({{ rows }}) % 10 * (({{ rows }}) {{ div }} 10 + 1)) {{ div }} nullif(({{ rows }}) {{ div }} 10, 0)
            + 1
    end)
{%- endmacro %}


{#-
  A monotone integer bin of a score in [0, 1] for the decile computation: 2^16 equal-width bins,
  so a bin holds few distinct scores and only bins on a decile boundary need a row-by-row rank.
-#}
{% macro propensity_score_bin(score) -%}
    cast(floor(({{ score }}) * 65536) as integer)
{%- endmacro %}


{#-
  Spark: the scores of every champion as a relation with columns (customer_id, product_group,
  as_of_date, score). Champions with the same feature list (the usual case: one spec)
  are scored in ONE pass over `relation`, the model id chosen per row by product group; a run
  (dbt run / build) writes the result to a work table beside the model (dropped by the model's
  post-hook), so the UDF runs once per row whatever reads it: Spark's CACHE TABLE cannot match a
  plan holding a Python UDF, and an uncached CTE is recomputed by each reader. Elsewhere
  (compile, docs) it is an inline subquery.
-#}
{% macro propensity_spark_scores(relation, champions) %}
    {%- set passes = {} -%}
    {%- for champion in champions -%}
        {%- set key = champion['feature_names'] | join(',') -%}
        {%- do passes.setdefault(key, []).append(champion) -%}
    {%- endfor -%}
    {%- set parts = [] -%}
    {%- for key, members in passes.items() -%}
        {%- set part -%}
            select
                customer_id,
                product_group,
                as_of_date,
                cast(propensity_score(
                    case product_group
                    {%- for c in members %}
                        when {{ propensity_string_literal(c['product_group']) }} then {{ propensity_string_literal(c['model_id']) }}
                    {%- endfor %}
                    end,
                    {{ propensity_feature_array(members[0]['feature_names']) }}
                ) as double) as score
            from {{ relation }}
            where product_group in ({% for c in members %}{{ propensity_string_literal(c['product_group']) }}{% if not loop.last %}, {% endif %}{% endfor %})
        {%- endset -%}
        {%- do parts.append(part) -%}
    {%- endfor -%}
    {%- if not parts -%}
        {%- do parts.append('select customer_id, product_group, as_of_date, cast(null as double) as score from '
            ~ relation ~ ' where false') -%}
    {%- endif -%}
    {%- set scored = parts | join(' union all ') -%}
    {%- if execute and flags.WHICH in ('run', 'build', 'retry') -%}
        {%- set scored_table = propensity_spark_scores_table() -%}
        {%- do run_query('drop table if exists ' ~ scored_table) -%}
        {%- do run_query('create table ' ~ scored_table ~ ' using parquet as ' ~ scored) -%}
        {{- return(scored_table) -}}
    {%- endif -%}
    {{- return('(' ~ scored ~ ') as scores_subq') -}}
{% endmacro %}


{#- The work table of propensity_spark_scores, and the post-hook that drops it (nothing on DuckDB). -#}
{% macro propensity_spark_scores_table() %}
    {{- return(this.schema ~ '.' ~ this.identifier ~ '__scored') -}}
{% endmacro %}

{% macro propensity_drop_spark_scores() %}
    {%- if target.type == 'spark' -%}
    drop table if exists {{ propensity_spark_scores_table() }}
    {%- endif -%}
{% endmacro %}
