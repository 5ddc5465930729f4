{#-
  Generic tests that return one row per problem with a `problem` column saying what is wrong,
  where, and what to do. Failing rows are stored (store_failures) so `propensity build` can print
  them; `dbt build` prints the test name and the count.

  Tests given a `since_column` check only what a run wrote when the dbt var `data_tests_since`
  (a date) is set: `propensity run daily` sets it to the first day it rewrote (the intermediate
  tables' lookback, or the scoring cutoff if earlier), so a daily run does not re-test years of
  history (at 10M customers the whole-table tests took 80 s of the run). New keys are still
  checked against every stored row. Without the var (`propensity build`, a plain `dbt build`)
  every row is tested.
-#}

{#- The var `data_tests_since` as a date, or none when unset. -#}
{% macro propensity_tests_since() %}
    {%- set since = var('data_tests_since', none) -%}
    {%- if since is none or since == '' -%}
        {{- return(none) -}}
    {%- endif -%}
    {%- if not modules.re.match('^[0-9]{4}-[0-9]{2}-[0-9]{2}$', since | string) -%}
        {{ exceptions.raise_compiler_error(
            "var data_tests_since must be a date (YYYY-MM-DD), got '" ~ since ~ "'"
        ) }}
    {%- endif -%}
    {{- return(propensity_date_literal(since | string)) -}}
{% endmacro %}

{% test unique_key(model, column_name, hint='', since_column=none) %}
{%- set since = propensity_tests_since() if since_column else none %}
select
    {{ column_name }} as key_value,
    count(*) as n_rows,
    'duplicate {{ column_name }} ' || cast({{ column_name }} as {{ string_type() }})
    || ' appears ' || cast(count(*) as {{ string_type() }}) || ' times in {{ model.identifier }}'
    || '. {{ (hint or "Each key must appear once: deduplicate the source table.") | replace("'", "''") }}' as problem
from {{ model }}
where {{ column_name }} is not null
{%- if since is not none %}
    and {{ column_name }} in (
        select {{ column_name }} from {{ model }} where {{ since_column }} >= {{ since }}
    )
{%- endif %}
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

{#- With `since_column` and the var set: the rows written since the date when the column is part
    of the key (an older row cannot share their key); otherwise every row sharing the key's first
    column with such a row, a superset of the rows a new duplicate can involve. -#}
{% test unique_combination(model, combination_of_columns, hint='', since_column=none) %}
{%- set since = propensity_tests_since() if since_column else none %}
select
    {{ combination_of_columns | join(', ') }},
    count(*) as n_rows,
    'duplicate ({{ combination_of_columns | join(", ") }}) in {{ model.identifier }}: '
    || {% for c in combination_of_columns %}cast({{ c }} as {{ string_type() }}){% if not loop.last %} || ', ' || {% endif %}{% endfor %}
    || '. {{ (hint or "The grain must be unique.") | replace("'", "''") }}' as problem
from {{ model }}
{%- if since is not none and since_column in combination_of_columns %}
where {{ since_column }} >= {{ since }}
{%- elif since is not none %}
where {{ combination_of_columns[0] }} in (
    select {{ combination_of_columns[0] }} from {{ model }} where {{ since_column }} >= {{ since }}
)
{%- endif %}
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
{% test has_children(model, column_name, children, field, hint='', since_column=none) %}
{%- set since = propensity_tests_since() if since_column else none %}
select
    count(*) as n_rows,
    cast(count(*) as {{ string_type() }}) || ' rows of {{ model.identifier }} have no row in {{ children.identifier }}'
    || ' (e.g. {{ column_name }} ' || min(cast(parent.{{ column_name }} as {{ string_type() }}))
    || '). {{ hint | replace("'", "''") }}' as problem
from {{ model }} as parent
where parent.{{ column_name }} is not null
{%- if since is not none %}
    and parent.{{ since_column }} >= {{ since }}
    {#- the children of those parents only: the anti join then builds on a day's keys, not on
        every child row #}
    and not exists (
        select 1 from (
            select {{ field }} from {{ children }}
            where {{ field }} in (
                select {{ column_name }} from {{ model }} where {{ since_column }} >= {{ since }}
            )
        ) as child
        where child.{{ field }} = parent.{{ column_name }}
    )
{%- else %}
    and not exists (
        select 1 from {{ children }} as child
        where child.{{ field }} = parent.{{ column_name }}
    )
{%- endif %}
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
