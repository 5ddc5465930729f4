{#-
  Incremental intermediates (models/intermediate/): the daily run recomputes only the orders of
  recent days. With dbt var intermediate_lookback_days = N (set by `propensity run daily`), a run
  deletes the rows whose order_date >= (newest stored order_date - N days) and inserts them again
  from the raw tables, in one transaction; older rows stay. It relies on raw orders and lines
  older than that window being unchanged since the last run: a late or corrected order inside
  the window is picked up, one older than it needs a full rebuild (var null, the default, or
  --full-refresh). docs/operations.md, "Daily run".
-#}

{#- The dbt var intermediate_lookback_days: none (rebuild whole) or a whole number of days >= 0. -#}
{% macro propensity_lookback_days() %}
    {%- set value = var('intermediate_lookback_days', none) -%}
    {%- if value is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- if value is boolean or (value | string) | trim | int(-1) | string != (value | string) | trim
        or (value | int) < 0 -%}
        {{ exceptions.raise_compiler_error(
            "dbt var intermediate_lookback_days must be null (rebuild the intermediate tables from "
            ~ "all history) or a whole number of days >= 0, got " ~ (value | string) ~ ".") }}
    {%- endif -%}
    {{- return(value | int) -}}
{% endmacro %}


{#- Materialization of an intermediate table: incremental when a lookback is set, else a table. -#}
{% macro propensity_intermediate_materialized() %}
    {{- return('table' if propensity_lookback_days() is none else 'incremental') -}}
{% endmacro %}


{#-
  First order_date an incremental run replaces in `relation` (the stored table): the newest stored
  `column` minus intermediate_lookback_days, as a python date; none = replace every row (no
  lookback set, an empty table, or `state` differs from the state the table was built with, which
  post-hook propensity_store_state wrote as the table comment). The model's select and the
  strategy's delete both call it before anything is written, so they agree on the window.
-#}
{% macro propensity_replace_since(relation, column='order_date', state=none, announce=false) %}
    {%- set days = propensity_lookback_days() -%}
    {%- if days is none or not execute -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set stored = propensity_stored_state(relation) if state is not none else none -%}
    {%- if state is not none and stored != state -%}
        {%- if announce -%}
            {%- do log(relation ~ " was built with " ~ (stored or "no recorded state") ~ ", now "
                ~ state ~ ": every row is rebuilt", info=true) -%}
        {%- endif -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- set newest = run_query('select max(' ~ adapter.quote(column) ~ ') from ' ~ relation).columns[0].values()[0] -%}
    {%- if newest is none -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- if newest is string -%}
        {%- set newest = modules.datetime.date.fromisoformat(newest[:10]) -%}
    {%- endif -%}
    {{- return(newest - modules.datetime.timedelta(days=days)) -}}
{% endmacro %}


{#- The state string stored as the comment of `relation`, or none. -#}
{% macro propensity_stored_state(relation) %}
    {%- set rows = run_query(
        "select comment from duckdb_tables() where database_name = '" ~ relation.database
        ~ "' and schema_name = '" ~ relation.schema ~ "' and table_name = '" ~ relation.identifier ~ "'"
    ).rows -%}
    {{- return(rows[0][0] if rows | length > 0 else none) -}}
{% endmacro %}


{#- Post-hook: remember propensity_replace_state() (what the rows were built from) as the table
    comment; nothing when the model has no replace_state. -#}
{% macro propensity_store_state() %}
    {%- set state = propensity_replace_state() -%}
    {%- if state is not none -%}
    comment on table {{ this }} is '{{ state | replace("'", "''") }}'
    {%- endif -%}
{% endmacro %}


{#-
  What the model's rows depend on besides the orders (config replace_state), or none:
  'product_groups' = md5 of the sorted (product_id, product_group) pairs of
  int_products_mapped_to_groups without `any`. A different mapping makes the next incremental run
  rebuild every row (the groups of old orders change with the rules).
-#}
{% macro propensity_replace_state() %}
    {%- set kind = config.get('replace_state', none) -%}
    {%- if kind is none or not execute -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- if kind != 'product_groups' -%}
        {{ exceptions.raise_compiler_error(
            "model " ~ model.name ~ ": replace_state must be 'product_groups' or unset, got '" ~ kind ~ "'.") }}
    {%- endif -%}
    {%- set query -%}
        select md5(coalesce({{ string_agg_ordered("product_id || '=' || product_group", "','", 'product_id, product_group') }}, ''))
        from {{ ref('int_products_mapped_to_groups') }}
        where product_group != 'any'
    {%- endset -%}
    {{- return('product groups md5 ' ~ run_query(query).columns[0].values()[0]) -}}
{% endmacro %}


{#-
  Custom incremental strategy `replace_recent` (config incremental_strategy='replace_recent',
  recent_column: the date column, replace_state: as above): delete the stored rows from the
  window's first day on (every row when the window is none), then insert the model's rows.
  dbt-duckdb runs both in the model's transaction.
-#}
{% macro get_incremental_replace_recent_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set column = config.get('recent_column', 'order_date') -%}
    {%- set since = propensity_replace_since(target, column, propensity_replace_state()) -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}
    delete from {{ target }}
    {%- if since is not none %}
    where {{ adapter.quote(column) }} >= {{ propensity_date_literal(since) }}
    {%- endif %};
    insert into {{ target }} ({{ columns }})
    select {{ columns }} from {{ arg_dict['temp_relation'] }};
{% endmacro %}
