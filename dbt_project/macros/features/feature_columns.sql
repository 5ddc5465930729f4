{#-
  The feature columns shared by fct_customer_features, fct_training_examples and
  fct_scoring_features. One list, so the three marts (and every product group's model) always have
  the same feature names in the same order. docs/features.md documents each column.
-#}

{#- Windows (days) of the windowed order features; one list, no copy-paste per window. -#}
{% macro feature_windows() %}
    {{- return([7, 30, 90, 180, 365]) -}}
{% endmacro %}


{% macro email_windows() %}
    {{- return([30, 90]) -}}
{% endmacro %}


{#- Windows (days) of the per-product-group features. -#}
{% macro group_windows() %}
    {{- return([90, 365]) -}}
{% endmacro %}


{#- Numeric customer features in contract order: list of (name, data_type). -#}
{% macro customer_feature_columns() %}
    {%- set cols = [
        ('tenure_days', 'integer'),
        ('days_since_last_order', 'integer'),
        ('order_count', 'integer'),
        ('spend_total', 'double'),
        ('avg_order_value', 'double'),
        ('rfm_recency_score', 'integer'),
        ('rfm_frequency_score', 'integer'),
        ('rfm_monetary_score', 'integer'),
        ('rfm_segment_code', 'integer'),
        ('btyd_frequency', 'integer'),
        ('btyd_recency_days', 'integer'),
        ('btyd_age_days', 'integer'),
        ('btyd_monetary_value', 'double'),
    ] -%}
    {%- for w in feature_windows() -%}
        {%- do cols.append(('order_count_' ~ w ~ 'd', 'integer')) -%}
        {%- do cols.append(('spend_' ~ w ~ 'd', 'double')) -%}
        {%- do cols.append(('items_' ~ w ~ 'd', 'integer')) -%}
        {%- do cols.append(('distinct_products_' ~ w ~ 'd', 'integer')) -%}
        {%- do cols.append(('return_count_' ~ w ~ 'd', 'integer')) -%}
        {%- do cols.append(('return_amount_' ~ w ~ 'd', 'double')) -%}
    {%- endfor -%}
    {%- for w in email_windows() -%}
        {%- do cols.append(('email_sends_' ~ w ~ 'd', 'integer')) -%}
        {%- do cols.append(('email_opens_' ~ w ~ 'd', 'integer')) -%}
        {%- do cols.append(('email_clicks_' ~ w ~ 'd', 'integer')) -%}
        {%- do cols.append(('email_open_rate_' ~ w ~ 'd', 'double')) -%}
        {%- do cols.append(('email_click_rate_' ~ w ~ 'd', 'double')) -%}
    {%- endfor -%}
    {%- do cols.append(('days_since_last_open', 'integer')) -%}
    {%- do cols.append(('days_since_last_click', 'integer')) -%}
    {%- do cols.append(('is_unsubscribed', 'integer')) -%}
    {%- do cols.append(('is_email_opt_in', 'integer')) -%}
    {%- do cols.append(('is_vip', 'integer')) -%}
    {{- return(cols) -}}
{% endmacro %}


{#- Per-group features: list of (name, data_type, fill value for customers without a group row). -#}
{% macro group_feature_columns() %}
    {%- set cols = [] -%}
    {%- for w in group_windows() -%}
        {%- do cols.append(('group_spend_' ~ w ~ 'd', 'double', '0')) -%}
        {%- do cols.append(('group_order_count_' ~ w ~ 'd', 'integer', '0')) -%}
    {%- endfor -%}
    {%- do cols.append(('group_days_since_last_order', 'integer', propensity_days_cap() | string)) -%}
    {{- return(cols) -}}
{% endmacro %}


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
  Quintile score 1-5 within one cutoff among buyers (customers with a purchase order before T;
  the caller selects only them, the others get 0). Ties share a score:
  score = 1 + floor(5 * (rank - 1) / n), rank the SQL rank() ordered from worst to best (ties take
  the lowest rank), n the number of buyers at the cutoff.
-#}
{% macro rfm_quintile(order_by) %}
    cast(1 + floor(5.0 * (rank() over (order by {{ order_by }}) - 1) / count(*) over ()) as integer)
{% endmacro %}


{#- The feature columns of an example row (fct_training_examples, fct_scoring_features): every
    customer feature, then the group features filled for customers without orders of the group.
    Expects CTEs customer_features and group_features joined by propensity_group_features_join(). -#}
{% macro propensity_example_feature_columns() %}
    {%- for name, data_type in customer_feature_columns() %}
        customer_features.{{ name }},
    {%- endfor %}
    {%- for name, data_type, fill in group_feature_columns() %}
        cast(coalesce(group_features.{{ name }}, {{ fill }}) as {{ data_type }}) as {{ name }}
        {%- if not loop.last %},{% endif %}
    {%- endfor %}
{% endmacro %}


{#- Every customer x active product group, with the (sparse) group features of that cutoff. -#}
{% macro propensity_group_features_join() %}
    cross join product_groups
    left join group_features
        on
            customer_features.customer_id = group_features.customer_id
            and product_groups.product_group = group_features.product_group
            and customer_features.as_of_date = group_features.as_of_date
{% endmacro %}
