{#-
  Whether the table of an optional source exists (false while parsing). The staging models of
  optional tables (configuration written by the CLI, generated ground truth) read it and build
  no rows without it; they are ephemeral, so the check runs whenever their children are built.
-#}
{% macro propensity_source_exists(relation) -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {{ return(adapter.get_relation(
        database=relation.database, schema=relation.schema, identifier=relation.identifier
    ) is not none) }}
{%- endmacro %}
