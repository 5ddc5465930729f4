{#-
  The raw input contract, checked where the staging models read it. `raw_contract_columns`
  compares a raw table with its contract (the columns and `data_type`s of the source table in
  models/staging/_staging__sources.yml, the one place the contract is written; models_py.ingest reads it as RAW_CONTRACT) when the model runs
  and stops the model with a compilation error that names the table, the column and the remedy:

  - a missing table or a missing (e.g. renamed) column;
  - a column of another type holding values that do not convert to the contract type (with an
    example value). Values that convert (an INTEGER id, a DOUBLE quantity, a VARCHAR date) pass;
  - NaN or infinite values in a DOUBLE contract column (e.g. unit_price).

  It returns {column: DuckDB type} of the raw table, so a staging model can adapt its casts
  (`raw_timestamp` converts TIMESTAMP WITH TIME ZONE to UTC). It checks only when models run
  (dbt run / build); while parsing, compiling or linting it returns {}.
-#}
{% macro raw_contract_columns(source_name, table_name) %}
    {%- set relation = source(source_name, table_name) -%}
    {%- if not execute or flags.WHICH not in ('run', 'build') -%}
        {{ return({}) }}
    {%- endif -%}
    {%- set contract = {} -%}
    {%- for node in graph.sources.values()
        if node.source_name == source_name and node.name == table_name -%}
        {%- for column in node.columns.values() -%}
            {%- do contract.update({column.name: column.data_type}) -%}
        {%- endfor -%}
    {%- endfor -%}
    {%- set found = relation_column_types(relation) -%}
    {%- set table = relation.schema ~ '.' ~ relation.identifier -%}
    {%- if not found -%}
        {{ exceptions.raise_compiler_error(
            "raw table " ~ table ~ " does not exist. Load it (propensity generate, propensity load, "
            ~ "or your EL tool) with the columns " ~ (contract.keys() | join(', '))
            ~ "; an optional table may be empty but must exist."
        ) }}
    {%- endif -%}
    {%- set missing = [] -%}
    {%- for name, type in contract.items() -%}
        {%- if name not in found -%}
            {%- do missing.append(name ~ ' ' ~ type | upper) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if missing -%}
        {{ exceptions.raise_compiler_error(
            "raw table " ~ table ~ " has no column " ~ (missing | join(', '))
            ~ " (the raw contract); it has " ~ (found.keys() | join(', '))
            ~ ". Rename the column in your load, or point the source at a view that selects it "
            ~ "under the contract name."
        ) }}
    {%- endif -%}
    {%- for name, type in contract.items() -%}
        {%- set actual = found[name] -%}
        {%- set same = actual == type | upper
            or (type | upper == 'TIMESTAMP' and actual.startswith('TIMESTAMP')) -%}
        {%- if not same -%}
            {%- set sql -%}
                select count(*) as n_bad, min(cast({{ name }} as {{ string_type() }})) as example
                from {{ relation }}
                where {{ name }} is not null and try_cast({{ name }} as {{ sql_type(type) }}) is null
            {%- endset -%}
            {%- set row = run_query(sql).rows[0] -%}
            {%- if row[0] > 0 -%}
                {{ exceptions.raise_compiler_error(
                    "raw table " ~ table ~ " column " ~ name ~ " has type " ~ actual ~ " and "
                    ~ row[0] ~ " values that do not convert to " ~ type | upper ~ " (e.g. '" ~ row[1]
                    ~ "'). Fix the values or the column type in your load."
                ) }}
            {%- endif -%}
        {%- elif type | upper == 'DOUBLE' and actual in ('DOUBLE', 'FLOAT') -%}
            {#- NaN and infinity are doubles, but no contract value: name them here rather than
                let a cast to decimal fail deep in the build. -#}
            {%- set key = (contract.keys() | list)[0] -%}
            {%- set sql -%}
                select count(*) as n_bad, min({{ key }}) as example
                from {{ relation }}
                where {{ is_not_finite(name) }}
            {%- endset -%}
            {%- set row = run_query(sql).rows[0] -%}
            {%- if row[0] > 0 -%}
                {{ exceptions.raise_compiler_error(
                    "raw table " ~ table ~ " column " ~ name ~ " has " ~ row[0] ~ " values that are "
                    ~ "not finite numbers (NaN or infinity; e.g. " ~ key ~ " " ~ row[1]
                    ~ "). Fix or drop these rows in your load."
                ) }}
            {%- endif -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(found) }}
{% endmacro %}

{#- A contract timestamp: naive timestamps are read as they are; TIMESTAMP WITH TIME ZONE values are
    converted to UTC and the zone dropped (documented cleaning rule, docs/reliability.md). -#}
{% macro raw_timestamp(name, columns) -%}
    {%- if (columns.get(name) or '').startswith('TIMESTAMP WITH TIME ZONE') -%}
        cast(timezone('UTC', {{ name }}) as timestamp)
    {%- else -%}
        cast({{ name }} as timestamp)
    {%- endif -%}
{%- endmacro %}
