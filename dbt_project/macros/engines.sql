{#-
  The few constructs whose SQL differs between DuckDB (the default engine) and Spark (profile
  target `spark`, docs/spark.md), dispatch-style: `default__` renders DuckDB's SQL unchanged,
  `spark__` Spark SQL's equivalent. Everything else in the project is SQL both engines read alike.
-#}

{#- The string type of casts: DuckDB's VARCHAR; Spark's VARCHAR needs a length, its STRING none. -#}
{% macro string_type() -%}
    {{- return(adapter.dispatch('string_type', 'propensity')()) -}}
{%- endmacro %}

{% macro default__string_type() %}varchar{% endmacro %}

{% macro spark__string_type() %}string{% endmacro %}


{#- Whole days from date `start` to date `end` (end - start). Spark's datediff takes (end, start). -#}
{% macro days_between(start, end) -%}
    {{- return(adapter.dispatch('days_between', 'propensity')(start, end)) -}}
{%- endmacro %}

{% macro default__days_between(start, end) %}date_diff('day', {{ start }}, {{ end }}){% endmacro %}

{% macro spark__days_between(start, end) %}datediff({{ end }}, {{ start }}){% endmacro %}


{#- The integer division operator (DuckDB `//`, Spark `div`). -#}
{% macro int_div_operator() -%}
    {{- return(adapter.dispatch('int_div_operator', 'propensity')()) -}}
{%- endmacro %}

{% macro default__int_div_operator() %}//{% endmacro %}

{% macro spark__int_div_operator() %}div{% endmacro %}


{#- A CTE materialization hint (`materialized` / `not materialized`): DuckDB's planner honours
    it; Spark has no such syntax and decides itself (it reuses exchanges of a CTE read twice). -#}
{% macro cte_hint(hint) -%}
    {{- return(adapter.dispatch('cte_hint', 'propensity')(hint)) -}}
{%- endmacro %}

{% macro default__cte_hint(hint) %}{{ hint }} {% endmacro %}

{% macro spark__cte_hint(hint) %}{% endmacro %}


{#- The ordered concatenation of `expression` over the rows grouped. -#}
{% macro string_agg_ordered(expression, separator, order_by) -%}
    {{- return(adapter.dispatch('string_agg_ordered', 'propensity')(expression, separator, order_by)) -}}
{%- endmacro %}

{% macro default__string_agg_ordered(expression, separator, order_by) -%}
    string_agg({{ expression }}, {{ separator }} order by {{ order_by }})
{%- endmacro %}

{#- Spark: sorted by the concatenated values themselves (callers order by a prefix of them). -#}
{% macro spark__string_agg_ordered(expression, separator, order_by) -%}
    concat_ws({{ separator }}, array_sort(collect_list({{ expression }})))
{%- endmacro %}


{#-
  Every column of model `model_name` prefixed with `alias`, except `except`: DuckDB's
  `alias.* exclude (...)`; on Spark (no EXCLUDE) the columns the model's yml declares, in their
  order (the model's enforced contract guarantees they are its columns).
-#}
{% macro star_except(model_name, alias, except) -%}
    {{- return(adapter.dispatch('star_except', 'propensity')(model_name, alias, except)) -}}
{%- endmacro %}

{% macro default__star_except(model_name, alias, except) -%}
    {{ alias }}.* exclude ({{ except | join(', ') }})
{%- endmacro %}

{% macro spark__star_except(model_name, alias, except) -%}
    {%- set names = [] -%}
    {%- if execute -%}
        {%- for node in graph.nodes.values() if node.resource_type == 'model' and node.name == model_name -%}
            {%- if not node.config.contract.enforced -%}
                {{ exceptions.raise_compiler_error(
                    "star_except('" ~ model_name ~ "'): the model needs an enforced contract (its yml "
                    ~ "columns are the column list on Spark).") }}
            {%- endif -%}
            {%- for name in node.columns -%}
                {%- if name | lower not in except -%}
                    {%- do names.append(alias ~ '.' ~ adapter.quote(name)) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endfor -%}
    {%- endif -%}
    {{ names | join(', ') if names else alias ~ '.*' }}
{%- endmacro %}


{#- True when a double is NaN or infinite. -#}
{% macro is_not_finite(expression) -%}
    {{- return(adapter.dispatch('is_not_finite', 'propensity')(expression)) -}}
{%- endmacro %}

{% macro default__is_not_finite(expression) %}isnan({{ expression }}) or isinf({{ expression }}){% endmacro %}

{% macro spark__is_not_finite(expression) -%}
    isnan({{ expression }}) or abs({{ expression }}) = double('infinity')
{%- endmacro %}


{#- A contract type (DuckDB's name, as in the yml files) in the engine's SQL. -#}
{% macro sql_type(contract_type) -%}
    {{- return(adapter.dispatch('sql_type', 'propensity')(contract_type)) -}}
{%- endmacro %}

{% macro default__sql_type(contract_type) %}{{ contract_type }}{% endmacro %}

{% macro spark__sql_type(contract_type) -%}
    {{ {'varchar': 'string', 'blob': 'binary'}.get(contract_type | lower, contract_type) }}
{%- endmacro %}


{#-
  {column name (lower case): type in DuckDB's upper-case names} of a relation, in column order:
  what the raw contract compares with the contract of _staging__sources.yml.
-#}
{% macro relation_column_types(relation) -%}
    {{- return(adapter.dispatch('relation_column_types', 'propensity')(relation)) -}}
{%- endmacro %}

{% macro default__relation_column_types(relation) %}
    {%- set found = {} -%}
    {%- set columns_sql -%}
        select lower(column_name), upper(data_type)
        from information_schema.columns
        where table_schema = '{{ relation.schema | replace("'", "''") }}'
            and table_name = '{{ relation.identifier | replace("'", "''") }}'
        order by ordinal_position
    {%- endset -%}
    {%- for row in run_query(columns_sql).rows -%}
        {%- do found.update({row[0]: row[1]}) -%}
    {%- endfor -%}
    {{- return(found) -}}
{% endmacro %}

{% macro spark__relation_column_types(relation) %}
    {%- set names = {'string': 'VARCHAR', 'int': 'INTEGER', 'smallint': 'SMALLINT',
        'tinyint': 'TINYINT', 'binary': 'BLOB', 'timestamp_ntz': 'TIMESTAMP'} -%}
    {%- set found = {} -%}
    {%- set existing = adapter.get_relation(
        database=relation.database, schema=relation.schema, identifier=relation.identifier) -%}
    {%- if existing is none -%}
        {{- return(found) -}}
    {%- endif -%}
    {%- for column in adapter.get_columns_in_relation(existing) -%}
        {%- set type = column.dtype | lower -%}
        {%- do found.update({column.name | lower: names.get(type, type | upper)}) -%}
    {%- endfor -%}
    {{- return(found) -}}
{% endmacro %}


{#- Model contracts on Spark: the yml data_types are DuckDB's names (varchar); the empty select
    dbt compares a model with casts them to Spark's (string), so the check compares like with like. -#}
{% macro spark__get_empty_schema_sql(columns) -%}
    {%- set col_err = [] -%}
    {%- set col_naked_numeric = [] -%}
    select
    {% for i in columns %}
      {%- set col = columns[i] -%}
      {%- if col['data_type'] is not defined -%}
        {%- do col_err.append(col['name']) -%}
      {%- endif -%}
      {% set col_name = adapter.quote(col['name']) if col.get('quote') else col['name'] %}
      cast(null as {{ sql_type(col['data_type']) }}) as {{ col_name }}{{ ", " if not loop.last }}
    {%- endfor -%}
    {%- if (col_err | length) > 0 -%}
      {{ exceptions.column_type_missing(column_names=col_err) }}
    {%- endif -%}
{%- endmacro %}


{#- `value` (a date) plus `days` days (negative: before), as a date or timestamp the engine
    compares with dates. DuckDB: dbt's cross-database dateadd. Spark: date_add (dbt-spark's
    dateadd builds a timestamp through unix seconds, several times slower to plan). -#}
{% macro add_days(days, value) -%}
    {{- return(adapter.dispatch('add_days', 'propensity')(days, value)) -}}
{%- endmacro %}

{% macro default__add_days(days, value) %}{{ dbt.dateadd('day', days, value) }}{% endmacro %}

{% macro spark__add_days(days, value) %}date_add({{ value }}, {{ days }}){% endmacro %}


{#-
  `numerator / denominator` as a double rounded to `digits` decimals, half away from zero, as
  DuckDB rounds a double: by its exact binary value, so 24.83 / 2 (the double 12.41499999...)
  rounds to 12.41. Spark's round() reads the double's shortest decimal form (12.415) and gives
  12.42, so on Spark the macro decides the half-way case itself: the scaled value |q| * 10^digits
  is split exactly into its double p and the rounding error e (Dekker's product; 10^digits has
  few bits, so every partial product is exact), and p rounds up when its fraction plus e is at
  least one half. Written in SQL so that the engine's own doubles give DuckDB's values.
-#}
{% macro round_quotient(numerator, denominator, digits, at_most=none) -%}
    {{- return(adapter.dispatch('round_quotient', 'propensity')(numerator, denominator, digits, at_most)) -}}
{%- endmacro %}

{#- `at_most`: the quotient capped (before rounding; the same after, as the cap is a round number). -#}
{% macro default__round_quotient(numerator, denominator, digits, at_most=none) -%}
    {%- if at_most is none -%}
    round({{ numerator }} / {{ denominator }}, {{ digits }})
    {%- else -%}
    round(least({{ at_most }}.0, {{ numerator }} / {{ denominator }}), {{ digits }})
    {%- endif -%}
{%- endmacro %}

{% macro spark__round_quotient(numerator, denominator, digits, at_most=none) -%}
    {%- if at_most is not none -%}
    least({{ at_most }}.0, {{ spark__round_quotient(numerator, denominator, digits) }})
    {%- else -%}
    {%- set scale = (10 ** digits) ~ '.0' -%}
    {%- set q = '(cast(' ~ numerator ~ ' as double) / (' ~ denominator ~ '))' -%}
    {%- set a = 'abs(' ~ q ~ ')' -%}
    {%- set p = '(' ~ a ~ ' * ' ~ scale ~ ')' -%}
    {%- set hi = '(134217729.0 * ' ~ a ~ ' - (134217729.0 * ' ~ a ~ ' - ' ~ a ~ '))' -%}
    {%- set err = '((' ~ hi ~ ' * ' ~ scale ~ ' - ' ~ p ~ ') + (' ~ a ~ ' - ' ~ hi ~ ') * ' ~ scale ~ ')' -%}
    {%- set half = '(' ~ p ~ ' - floor(' ~ p ~ ') - 0.5D)' -%}
    (signum({{ q }}) * (floor({{ p }}) + case
        when {{ half }} > 0 or ({{ half }} = 0 and {{ err }} >= 0) then 1
        else 0
    end) / {{ scale }})
    {%- endif -%}
{%- endmacro %}


{#-
  Exact sum of a money expression of type decimal(18, 2) (net_amount, return_amount, or a CASE
  over them), as decimal(28, 2) on Spark and DuckDB's sum type elsewhere. Spark sums a decimal
  wider than 18 digits with Java BigDecimal: the order aggregate of one cutoff at 1M customers
  (31 sums over 10.7M orders) took 12.3-17.0 s that way and 4.7-7.2 s summing whole cents as
  bigint (docs/spark.md). The cents of a decimal(18, 2) are integers, so the bigint sum is the
  exact decimal sum; it wraps past 9.2e18 cents (9.2e16 in money), far beyond any customer.
-#}
{% macro money_sum(expression) -%}
    {{- return(adapter.dispatch('money_sum', 'propensity')(expression)) -}}
{%- endmacro %}

{% macro default__money_sum(expression) %}sum({{ expression }}){% endmacro %}

{% macro spark__money_sum(expression) -%}
    cast(cast(sum(cast(({{ expression }}) * 100 as bigint)) as decimal(28, 0)) * 0.01 as decimal(28, 2))
{%- endmacro %}
