{#-
  True when a product's field `value` matches a product-group rule's `pattern`: a case-insensitive
  regular expression (DuckDB's RE2 syntax) searched anywhere in the value, so `wine` matches
  `Red Wine` and `^wine$` only `wine`; a null field is the empty string. The one definition of a
  rule match: int_products_mapped_to_groups uses it, tests/macros/assert_product_group_match.sql
  pins its cases.
-#}
{% macro product_group_match(value, pattern) -%}
    {{- return(adapter.dispatch('product_group_match', 'propensity')(value, pattern)) -}}
{%- endmacro %}

{% macro default__product_group_match(value, pattern) -%}
    regexp_matches(coalesce({{ value }}, ''), {{ pattern }}, 'i')
{%- endmacro %}

{#- Spark: Java regular expressions, case-insensitive by an inline flag (RE2's syntax is a subset
    for the patterns rules use: alternation, anchors, classes, groups). -#}
{% macro spark__product_group_match(value, pattern) -%}
    coalesce({{ value }}, '') rlike concat('(?i)', {{ pattern }})
{%- endmacro %}
