{#-
  Generic test: no numeric column of the model is NULL (every feature has a documented fill value).
  One row per offending row, naming the NULL columns. Columns are read from the built relation, so
  a new feature column is covered without editing the test. `nullable` names numeric columns that
  are no features and may be NULL by design (e.g. the money of an experiment without discounts).
-#}
{% test no_null_features(model, key_columns, hint='', nullable=[]) %}
{%- set numeric = [] -%}
{%- if execute -%}
    {%- for col in adapter.get_columns_in_relation(model) -%}
        {%- if col.name not in nullable and (col.is_number() or col.is_float() or col.is_integer() or col.dtype | lower in ('integer', 'bigint', 'double', 'float', 'smallint', 'hugeint')) -%}
            {%- do numeric.append(col.name) -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif %}
{%- if numeric | length == 0 %}
select null as problem where false
{%- else %}
select
    {{ key_columns | join(', ') }},
    'NULL numeric feature(s) in {{ model.identifier }} for ('
    || {% for c in key_columns %}cast({{ c }} as {{ string_type() }}){% if not loop.last %} || ', ' || {% endif %}{% endfor %}
    || '): ' || concat_ws(', '
    {%- for c in numeric %}, case when {{ adapter.quote(c) }} is null then '{{ c }}' end{% endfor %})
    || '. {{ (hint or "Every feature has a fill value (docs/features.md); a NULL means a missing coalesce in the feature SQL.") | replace("'", "''") }}' as problem
from {{ model }}
where
    {%- for c in numeric %}
    {{ adapter.quote(c) }} is null{% if not loop.last %} or{% endif %}
    {%- endfor %}
{%- endif %}
{% endtest %}
