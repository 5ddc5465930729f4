{#-
  Generic tests that return one row per problem with a `problem` column saying what is wrong,
  where, and what to do. Failing rows are stored (store_failures) so `propensity build` can print
  them; `dbt build` prints the test name and the count.
-#}

{% test unique_key(model, column_name, hint='') %}
select
    {{ column_name }} as key_value,
    count(*) as n_rows,
    'duplicate {{ column_name }} ' || cast({{ column_name }} as varchar)
    || ' appears ' || cast(count(*) as varchar) || ' times in {{ model.identifier }}'
    || '. {{ (hint or "Each key must appear once: deduplicate the source table.") | replace("'", "''") }}' as problem
from {{ model }}
where {{ column_name }} is not null
group by {{ column_name }}
having count(*) > 1
{% endtest %}

{% test not_null_key(model, column_name, hint='') %}
select
    *,
    '{{ column_name }} is null in {{ model.identifier }}'
    || '. {{ (hint or "Rows need a key: fix or drop them in the source table.") | replace("'", "''") }}' as problem
from {{ model }}
where {{ column_name }} is null
{% endtest %}

{% test references(model, column_name, to, field, hint='') %}
select
    child.{{ column_name }} as key_value,
    count(*) as n_rows,
    '{{ column_name }} ' || cast(child.{{ column_name }} as varchar)
    || ' in {{ model.identifier }} has no match in {{ to.identifier }}.{{ field }} ('
    || cast(count(*) as varchar) || ' rows). {{ (hint or "Load the missing parent rows or drop these rows.") | replace("'", "''") }}' as problem
from {{ model }} as child
left join {{ to }} as parent
    on child.{{ column_name }} = parent.{{ field }}
where child.{{ column_name }} is not null and parent.{{ field }} is null
group by child.{{ column_name }}
{% endtest %}

{% test allowed_values(model, column_name, values, hint='') %}
select
    {{ column_name }} as value,
    count(*) as n_rows,
    '{{ column_name }} = ''' || coalesce(cast({{ column_name }} as varchar), 'NULL')
    || ''' in {{ model.identifier }} (' || cast(count(*) as varchar) || ' rows) is not one of '
    || '{{ values | join(", ") | replace("'", "''") }}. {{ hint | replace("'", "''") }}' as problem
from {{ model }}
where {{ column_name }} is null
    or cast({{ column_name }} as varchar) not in ({% for v in values %}'{{ v }}'{% if not loop.last %}, {% endif %}{% endfor %})
group by {{ column_name }}
{% endtest %}

{% test value_between(model, column_name, min_value=none, max_value=none, hint='') %}
select
    *,
    '{{ column_name }} = ' || coalesce(cast({{ column_name }} as varchar), 'NULL')
    || ' in {{ model.identifier }} is outside [{{ min_value }}, {{ max_value }}]. {{ hint | replace("'", "''") }}' as problem
from {{ model }}
where {{ column_name }} is null
    {%- if min_value is not none %} or {{ column_name }} < {{ min_value }}{% endif %}
    {%- if max_value is not none %} or {{ column_name }} > {{ max_value }}{% endif %}
{% endtest %}

{% test unique_combination(model, combination_of_columns, hint='') %}
select
    {{ combination_of_columns | join(', ') }},
    count(*) as n_rows,
    'duplicate ({{ combination_of_columns | join(", ") }}) in {{ model.identifier }}: '
    || {% for c in combination_of_columns %}cast({{ c }} as varchar){% if not loop.last %} || ', ' || {% endif %}{% endfor %}
    || '. {{ (hint or "The grain must be unique.") | replace("'", "''") }}' as problem
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1
{% endtest %}
