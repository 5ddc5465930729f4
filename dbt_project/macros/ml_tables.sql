{#-
  The model registry and evaluation tables (schema: dbt var `registry_schema`, default `ml`,
  which must equal models_py.registry.SCHEMA; a test checks it). This macro is the ONE place their DDL
  lives: `on-run-start` calls it, so every `dbt build` / `dbt run` creates the empty tables, and
  `dbt run-operation ensure_ml_tables` creates them alone. Python (models_py.registry) writes
  the rows and refuses to run when the tables are missing. Statements are idempotent
  (`create ... if not exists`); a column added to a table below is added to existing tables by
  `alter table ... add column` (appended at the end, so existing inserts by name keep working),
  never a drop.

  JSON values are stored as varchar (portable to Spark); the ONNX model as a binary column.
-#}
{% macro ensure_ml_tables() -%}
    {{ return(adapter.dispatch('ensure_ml_tables', 'propensity')()) }}
{%- endmacro %}

{% macro ml_binary_type() -%}
    {{ return(adapter.dispatch('ml_binary_type', 'propensity')()) }}
{%- endmacro %}

{% macro default__ml_binary_type() %}blob{% endmacro %}

{% macro spark__ml_binary_type() %}binary{% endmacro %}

{% macro ml_table_ddl() %}
    {%- set tables = {
        'model_registry': [
            ('model_id', 'varchar'),
            ('spec_name', 'varchar'),
            ('product_group', 'varchar'),
            ('algorithm', 'varchar'),
            ('hyperparameters', 'varchar'),
            ('trained_at', 'timestamp'),
            ('training_relation', 'varchar'),
            ('train_cutoffs', 'varchar'),
            ('validation_cutoffs', 'varchar'),
            ('test_cutoffs', 'varchar'),
            ('feature_names', 'varchar'),
            ('feature_hash', 'varchar'),
            ('threshold', 'double'),
            ('threshold_rule', 'varchar'),
            ('metrics', 'varchar'),
            ('onnx_model', ml_binary_type()),
            ('onnx_sha256', 'varchar'),
            ('library_versions', 'varchar'),
        ],
        'model_aliases': [
            ('product_group', 'varchar'),
            ('alias', 'varchar'),
            ('model_id', 'varchar'),
            ('updated_at', 'timestamp'),
        ],
        'alias_history': [
            ('product_group', 'varchar'),
            ('alias', 'varchar'),
            ('model_id', 'varchar'),
            ('previous_model_id', 'varchar'),
            ('action', 'varchar'),
            ('reason', 'varchar'),
            ('changed_by', 'varchar'),
            ('changed_at', 'timestamp'),
        ],
        'model_metrics': [
            ('model_id', 'varchar'),
            ('spec_name', 'varchar'),
            ('product_group', 'varchar'),
            ('split', 'varchar'),
            ('examples', 'bigint'),
            ('positives', 'bigint'),
            ('base_rate', 'double'),
            ('roc_auc', 'double'),
            ('pr_auc', 'double'),
            ('log_loss', 'double'),
            ('brier', 'double'),
            ('threshold', 'double'),
            ('precision', 'double'),
            ('recall', 'double'),
            ('f1', 'double'),
            ('true_positives', 'bigint'),
            ('false_positives', 'bigint'),
            ('true_negatives', 'bigint'),
            ('false_negatives', 'bigint'),
            ('oracle_roc_auc', 'double'),
            ('evaluated_at', 'timestamp'),
            ('observable_oracle_roc_auc', 'double'),
        ],
        'lift_by_decile': [
            ('model_id', 'varchar'),
            ('product_group', 'varchar'),
            ('split', 'varchar'),
            ('decile', 'integer'),
            ('customers', 'bigint'),
            ('positives', 'bigint'),
            ('response_rate', 'double'),
            ('lift', 'double'),
            ('cumulative_customers', 'bigint'),
            ('cumulative_positives', 'bigint'),
            ('cumulative_gains', 'double'),
            ('cumulative_lift', 'double'),
        ],
        'calibration_bins': [
            ('model_id', 'varchar'),
            ('product_group', 'varchar'),
            ('split', 'varchar'),
            ('bin', 'integer'),
            ('bin_lower', 'double'),
            ('bin_upper', 'double'),
            ('examples', 'bigint'),
            ('mean_predicted', 'double'),
            ('observed_rate', 'double'),
        ],
        'feature_importance': [
            ('model_id', 'varchar'),
            ('product_group', 'varchar'),
            ('feature_name', 'varchar'),
            ('importance_mean', 'double'),
            ('importance_std', 'double'),
            ('importance_rank', 'integer'),
            ('method', 'varchar'),
            ('mean_abs_shap', 'double'),
            ('shap_rank', 'integer'),
            ('shap_method', 'varchar'),
        ],
        'reference_distributions': [
            ('model_id', 'varchar'),
            ('product_group', 'varchar'),
            ('feature_name', 'varchar'),
            ('feature_kind', 'varchar'),
            ('bin', 'integer'),
            ('bin_lower', 'double'),
            ('bin_upper', 'double'),
            ('category', 'double'),
            ('reference_rows', 'bigint'),
            ('reference_share', 'double'),
        ],
        'retrain_decisions': [
            ('run_id', 'varchar'),
            ('decided_at', 'timestamp'),
            ('as_of_date', 'date'),
            ('policy', 'varchar'),
            ('spec_name', 'varchar'),
            ('product_group', 'varchar'),
            ('champion_model_id', 'varchar'),
            ('model_age_days', 'integer'),
            ('realised_roc_auc', 'double'),
            ('estimated_roc_auc', 'double'),
            ('reference_roc_auc', 'double'),
            ('auc_drop', 'double'),
            ('drift_alerts', 'integer'),
            ('drifted_features', 'varchar'),
            ('decision', 'varchar'),
            ('reasons', 'varchar'),
            ('new_model_id', 'varchar'),
            ('promoted', 'boolean'),
        ],
        'curve_points': [
            ('model_id', 'varchar'),
            ('product_group', 'varchar'),
            ('split', 'varchar'),
            ('curve', 'varchar'),
            ('point', 'integer'),
            ('x', 'double'),
            ('y', 'double'),
            ('threshold', 'double'),
        ],
        'uplift_model_sets': [
            ('model_set_id', 'varchar'),
            ('spec_name', 'varchar'),
            ('offer_family', 'varchar'),
            ('experiment_id', 'varchar'),
            ('learner', 'varchar'),
            ('outcomes', 'varchar'),
            ('control_arm', 'varchar'),
            ('arms', 'varchar'),
            ('trained_at', 'timestamp'),
            ('training_relation', 'varchar'),
            ('feature_names', 'varchar'),
            ('feature_hash', 'varchar'),
            ('hyperparameters', 'varchar'),
            ('evaluation', 'varchar'),
            ('library_versions', 'varchar'),
            ('held_out_policy_value', 'double'),
            ('held_out_policy_value_ci_lower', 'double'),
            ('held_out_policy_value_ci_upper', 'double'),
        ],
        'uplift_model_parts': [
            ('model_set_id', 'varchar'),
            ('part', 'varchar'),
            ('role', 'varchar'),
            ('arm', 'varchar'),
            ('model_id', 'varchar'),
            ('algorithm', 'varchar'),
            ('output_kind', 'varchar'),
            ('onnx_model', ml_binary_type()),
            ('onnx_sha256', 'varchar'),
        ],
        'uplift_aliases': [
            ('offer_family', 'varchar'),
            ('alias', 'varchar'),
            ('model_set_id', 'varchar'),
            ('updated_at', 'timestamp'),
        ],
        'uplift_metrics': [
            ('model_set_id', 'varchar'),
            ('offer_family', 'varchar'),
            ('arm', 'varchar'),
            ('outcome', 'varchar'),
            ('split', 'varchar'),
            ('treated', 'bigint'),
            ('control', 'bigint'),
            ('qini_coefficient', 'double'),
            ('auuc', 'double'),
            ('uplift_at_10', 'double'),
            ('uplift_at_20', 'double'),
            ('uplift_at_30', 'double'),
            ('oracle_qini_coefficient', 'double'),
            ('evaluated_at', 'timestamp'),
        ],
        'uplift_bins': [
            ('model_set_id', 'varchar'),
            ('offer_family', 'varchar'),
            ('arm', 'varchar'),
            ('outcome', 'varchar'),
            ('split', 'varchar'),
            ('bin', 'integer'),
            ('treated', 'bigint'),
            ('control', 'bigint'),
            ('mean_treated', 'double'),
            ('mean_control', 'double'),
            ('uplift', 'double'),
            ('ci_lower', 'double'),
            ('ci_upper', 'double'),
        ],
    } -%}
    {{ return(tables) }}
{% endmacro %}

{#- Spark: Parquet tables in the metastore; the same columns, types in Spark's names. -#}
{% macro spark__ensure_ml_tables() %}
    {%- if execute -%}
        {%- set schema = var('registry_schema') -%}
        {%- do run_query('create schema if not exists ' ~ adapter.quote(schema)) -%}
        {%- for table, columns in ml_table_ddl().items() -%}
            {%- set cols = [] -%}
            {%- for name, type in columns -%}
                {%- do cols.append(adapter.quote(name) ~ ' ' ~ sql_type(type)) -%}
            {%- endfor -%}
            {%- do run_query('create table if not exists ' ~ adapter.quote(schema) ~ '.' ~ adapter.quote(table)
                ~ ' (' ~ cols | join(', ') ~ ') using parquet') -%}
        {%- endfor -%}
    {%- endif -%}
    select 1 as ml_tables_ready
{% endmacro %}

{% macro default__ensure_ml_tables() %}
    {%- if execute -%}
        {%- set schema = var('registry_schema') -%}
        {%- set statements = ['create schema if not exists ' ~ adapter.quote(schema)] -%}
        {%- for table, columns in ml_table_ddl().items() -%}
            {%- set cols = [] -%}
            {%- for name, type in columns -%}
                {%- do cols.append('"' ~ name ~ '" ' ~ type) -%}
            {%- endfor -%}
            {%- do statements.append(
                'create table if not exists ' ~ adapter.quote(schema) ~ '."' ~ table ~ '" ('
                ~ cols | join(', ') ~ ')'
            ) -%}
        {%- endfor -%}
        {%- for statement in statements -%}
            {%- do run_query(statement) -%}
        {%- endfor -%}
        {#- Tables created by an older version get the columns added since (never a drop). #}
        {%- set existing = run_query(
            "select table_name || '.' || column_name from information_schema.columns "
            ~ "where table_schema = '" ~ schema | replace("'", "''") ~ "'").columns[0].values() -%}
        {%- for table, columns in ml_table_ddl().items() -%}
            {%- for name, type in columns -%}
                {%- if (table ~ '.' ~ name) not in existing -%}
                    {%- do run_query('alter table ' ~ adapter.quote(schema) ~ '."' ~ table
                        ~ '" add column "' ~ name ~ '" ' ~ type) -%}
                    {%- do log('ensure_ml_tables: added column ' ~ schema ~ '.' ~ table ~ '.' ~ name, info=true) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- do log('ensure_ml_tables: schema ' ~ schema ~ ' ready (' ~ (statements | length - 1) ~ ' tables)') -%}
    {%- endif -%}
    select 1 as ml_tables_ready
{% endmacro %}
