{#-
  Small helpers of the feature models (models/features/). Every feature column, its window and its
  fill value are in the feature catalogue, models/features/_features__models.yml; the contracts
  there fail the build when the SQL and the catalogue disagree.
-#}

{#- Windows (days) of the windowed order features: one list, the SQL loops over it. -#}
{% macro feature_windows() %}
    {{- return([7, 30, 90, 180, 365]) -}}
{% endmacro %}


{#- Windows (days) of the email features. -#}
{% macro email_feature_windows() %}
    {{- return([30, 90]) -}}
{% endmacro %}


{#- Windows (days) of the per-product-group features. -#}
{% macro group_feature_windows() %}
    {{- return([90, 365]) -}}
{% endmacro %}


{#- Days from `date_column` to the cutoff, capped at feature_days_cap; "never" (null) is the cap. -#}
{% macro days_since_capped(date_column) -%}
    {%- set cap = propensity_days_cap() -%}
    coalesce(least({{ days_between(date_column, as_of()) }}, {{ cap }}), {{ cap }})
{%- endmacro %}


{#-
  The per-group feature columns of `relation` (fct_customer_group_features, left-joined: null for
  a customer without orders of the group before the cutoff) with the catalogue's fill values:
  0 for spend and orders, feature_days_cap for days since the last order. Shared by
  fct_training_examples and fct_scoring_features, so both fill alike.
-#}
{% macro group_features_filled(relation) -%}
    {%- for w in group_feature_windows() %}
        cast(coalesce({{ relation }}.group_spend_{{ w }}d, 0) as double) as group_spend_{{ w }}d,
        cast(coalesce({{ relation }}.group_order_count_{{ w }}d, 0) as integer) as group_order_count_{{ w }}d,
    {%- endfor %}
        cast(coalesce({{ relation }}.group_days_since_last_order, {{ propensity_days_cap() }}) as integer)
            as group_days_since_last_order
{%- endmacro %}

{#- The names of those columns, in the same order. -#}
{% macro group_feature_columns() -%}
    {%- set columns = [] -%}
    {%- for w in group_feature_windows() -%}
        {%- do columns.extend(['group_spend_' ~ w ~ 'd', 'group_order_count_' ~ w ~ 'd']) -%}
    {%- endfor -%}
    {%- do columns.append('group_days_since_last_order') -%}
    {{- return(columns) -}}
{%- endmacro %}


{#-
  Aggregate: the number of distinct purchase days before the cutoff (BTYD frequency + 1) of the
  rows grouped: int_orders_summarised flags one purchase order per (customer, day), so it is a
  count of flagged rows; every row has order_date < T and T is a midnight, so a day is counted
  whole or not at all. No distinct count: that made the engine keep the cutoff's orders for a
  second pass (DuckDB materializes the aggregate's input; at 10M customers 90 s of 158 s).
-#}
{% macro purchase_days(first_purchase_of_day_column) -%}
    count(case when {{ first_purchase_of_day_column }} then 1 end)
{%- endmacro %}


{#-
  RFM segment from the recency and frequency scores (1-5; 0 = no purchase before the cutoff),
  after the usual R x F grid. Returns (code, name, condition) triples; the code is stable so a model
  can one-hot it.
-#}
{% macro rfm_segments(r, f) %}
    {{- return([
        (0, 'no_purchase', r ~ ' = 0'),
        (1, 'champions', r ~ ' = 5 and ' ~ f ~ ' >= 4'),
        (2, 'loyal', r ~ ' between 3 and 4 and ' ~ f ~ ' >= 4'),
        (3, 'potential_loyalist', r ~ ' >= 4 and ' ~ f ~ ' between 2 and 3'),
        (4, 'new', r ~ ' = 5 and ' ~ f ~ ' = 1'),
        (5, 'promising', r ~ ' = 4 and ' ~ f ~ ' = 1'),
        (6, 'need_attention', r ~ ' = 3 and ' ~ f ~ ' = 3'),
        (7, 'about_to_sleep', r ~ ' = 3 and ' ~ f ~ ' <= 2'),
        (8, 'cant_lose', r ~ ' <= 2 and ' ~ f ~ ' = 5'),
        (9, 'at_risk', r ~ ' <= 2 and ' ~ f ~ ' between 3 and 4'),
        (10, 'hibernating', r ~ ' = 2 and ' ~ f ~ ' <= 2'),
        (11, 'lost', r ~ ' = 1 and ' ~ f ~ ' <= 2'),
    ]) -}}
{% endmacro %}


{#-
  Quintile score 1-5 among the rows of the select (the caller selects the buyers of one cutoff).
  Ties share a score: score = 1 + floor(5 * (rank - 1) / n), rank the SQL rank() ordered from
  worst to best (ties take the lowest rank), n the number of rows.
-#}
{% macro rfm_quintile(order_by) -%}
    {{- return(adapter.dispatch('rfm_quintile', 'propensity')(order_by)) -}}
{%- endmacro %}

{% macro default__rfm_quintile(order_by) -%}
    cast(1 + floor(5.0 * (rank() over (order by {{ order_by }}) - 1) / count(*) over ()) as integer)
{%- endmacro %}

{#- Spark: a double product (5.0 would be a decimal, rounded to 6 places before the floor). -#}
{% macro spark__rfm_quintile(order_by) -%}
    cast(1 + floor(cast(5 as double) * (rank() over (order by {{ order_by }}) - 1) / count(*) over ()) as integer)
{%- endmacro %}
