{#-
  Generic tests that return one row per problem with a `problem` column saying what is wrong,
  where, and what to do. Failing rows are stored (store_failures) so `propensity build` can print
  them; `dbt build` prints the test name and the count.
-#}

{% test unique_key(model, column_name, hint='') %}
select
    {{ column_name }} as key_value,
    count(*) as n_rows,
    'duplicate {{ column_name }} ' || cast({{ column_name }} as {{ string_type() }})
    || ' appears ' || cast(count(*) as {{ string_type() }}) || ' times in {{ model.identifier }}'
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
    '{{ column_name }} ' || cast(child.{{ column_name }} as {{ string_type() }})
    || ' in {{ model.identifier }} has no match in {{ to.identifier }}.{{ field }} ('
    || cast(count(*) as {{ string_type() }}) || ' rows). {{ (hint or "Load the missing parent rows or drop these rows.") | replace("'", "''") }}' as problem
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
    '{{ column_name }} = ''' || coalesce(cast({{ column_name }} as {{ string_type() }}), 'NULL')
    || ''' in {{ model.identifier }} (' || cast(count(*) as {{ string_type() }}) || ' rows) is not one of '
    || '{{ values | join(", ") | replace("'", "''") }}. {{ hint | replace("'", "''") }}' as problem
from {{ model }}
where {{ column_name }} is null
    or cast({{ column_name }} as {{ string_type() }}) not in ({% for v in values %}'{{ v }}'{% if not loop.last %}, {% endif %}{% endfor %})
group by {{ column_name }}
{% endtest %}

{% test value_between(model, column_name, min_value=none, max_value=none, hint='') %}
select
    *,
    '{{ column_name }} = ' || coalesce(cast({{ column_name }} as {{ string_type() }}), 'NULL')
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
    || {% for c in combination_of_columns %}cast({{ c }} as {{ string_type() }}){% if not loop.last %} || ', ' || {% endif %}{% endfor %}
    || '. {{ (hint or "The grain must be unique.") | replace("'", "''") }}' as problem
from {{ model }}
group by {{ combination_of_columns | join(', ') }}
having count(*) > 1
{% endtest %}

{#- Rows matching `condition` (SQL over the model's columns): one problem row saying how many, with
    an example key, and what happens to them (warn severity documents a cleaning rule). -#}
{% test no_rows_where(model, column_name, condition, what, example_key, hint='') %}
select
    count(*) as n_rows,
    cast(count(*) as {{ string_type() }}) || ' rows in {{ model.identifier }} have {{ what | replace("'", "''") }}'
    || ' (e.g. {{ example_key }} ' || min(cast({{ example_key }} as {{ string_type() }})) || ', {{ column_name }} = '
    || min(cast({{ column_name }} as {{ string_type() }})) || '). {{ hint | replace("'", "''") }}' as problem
from {{ model }}
where {{ condition }}
having count(*) > 0
{% endtest %}

{#- Parents without children (e.g. orders without lines): one problem row with the count and an
    example key. -#}
{% test has_children(model, column_name, children, field, hint='') %}
select
    count(*) as n_rows,
    cast(count(*) as {{ string_type() }}) || ' rows of {{ model.identifier }} have no row in {{ children.identifier }}'
    || ' (e.g. {{ column_name }} ' || min(cast(parent.{{ column_name }} as {{ string_type() }}))
    || '). {{ hint | replace("'", "''") }}' as problem
from {{ model }} as parent
where parent.{{ column_name }} is not null
    and not exists (
        select 1 from {{ children }} as child
        where child.{{ field }} = parent.{{ column_name }}
    )
having count(*) > 0
{% endtest %}

{#- Timestamps later than now (plus a day of slack for time zones): a clock or load error. They
    would count as history and move the default scoring cutoff into the future. -#}
{% test not_in_future(model, column_name, hint='') %}
select
    count(*) as n_rows,
    '{{ column_name }} ' || cast(max({{ column_name }}) as {{ string_type() }}) || ' in {{ model.identifier }} is in the future ('
    || cast(count(*) as {{ string_type() }}) || ' rows after ' || cast(cast(current_timestamp as date) as {{ string_type() }})
    || '). {{ (hint or "Fix the clock or time zone of the load: future events would count as history and move the default scoring cutoff.") | replace("'", "''") }}' as problem
from {{ model }}
where cast({{ column_name }} as timestamp) > cast(current_timestamp as timestamp) + interval 1 day
having count(*) > 0
{% endtest %}
