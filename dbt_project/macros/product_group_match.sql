{#-
  True when a product's field `value` matches a product-group rule's `pattern`: a case-insensitive
  regular expression (DuckDB's RE2 syntax) searched anywhere in the value, so `wine` matches
  `Red Wine` and `^wine$` only `wine`; a null field is the empty string. The one definition of a
  rule match: int_products_mapped_to_groups uses it, tests/macros/assert_product_group_match.sql
  pins its cases.
-#}
{% macro product_group_match(value, pattern) -%}
    regexp_matches(coalesce({{ value }}, ''), {{ pattern }}, 'i')
{%- endmacro %}
