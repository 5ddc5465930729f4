{#-
  Customer features as of one cutoff T, one row per customer created before T, from events
  strictly before T. The materialization propensity_by_cutoff renders this model once per cutoff of
  dim_cutoffs (as_of() is that cutoff, as_of(w) the date w days before it) and runs each cutoff as
  its own statement; incremental by as_of_date: a run replaces the cutoffs now in dim_cutoffs and
  keeps older ones (features of past scores stay for monitoring).
  At train, validation and test cutoffs the rows are those of the customers of the training sample
  (int_training_sample) and of the customers an experiment assigned that day, unless var
  sample_training_features is false (macro propensity_features_of_sample_only): every aggregate
  reads their events only, while the RFM quintiles still rank every buyer created before T, so a
  sampled customer's row equals the one a build of every customer gives.
  Window bounds are date literals, so the engine sees plain range filters. T is a midnight: an
  event date < T is an event timestamp < T, and a window of w days is [T - w days, T).
  Every column, window and fill value: _features__models.yml (the feature catalogue).
-#}
{{
    config(
        materialized='propensity_by_cutoff',
        unique_key='as_of_date',
        on_schema_change='fail',
    )
}}
{%- set order_windows = feature_windows() -%}
{%- set email_windows = email_feature_windows() -%}
{%- set sample_only = propensity_features_of_sample_only() -%}
-- depends_on: {{ ref('int_training_sample') }}
-- depends_on: {{ ref('int_experiment_assignments') }}

with customers as (
    select
        customer_id,
        created_at,
        is_email_opt_in,
        is_vip
    from {{ ref('stg_raw__customers') }}
    where
        created_at < cast({{ as_of() }} as timestamp)
        and {{ propensity_sample_filter('customer_id') }}
),

orders as (
    select * from {{ ref('int_orders_summarised') }}
    where
        order_date < {{ as_of() }}
        and {{ propensity_sample_filter('customer_id', 'select customers.customer_id from customers') }}
),

-- Distinct products per window: the last purchase day before T of each (customer, product)
-- bought in the longest window, straight from the lines.
product_purchases as (
    select
        orders.customer_id,
        lines.product_id,
        max(cast(orders.ordered_at as date)) as last_purchase_date
    from {{ ref('stg_raw__order_lines') }} as lines
    inner join {{ ref('stg_raw__orders') }} as orders on lines.order_id = orders.order_id
    where
        lines.quantity > 0
        and orders.customer_id is not null
        and orders.ordered_at < cast({{ as_of() }} as timestamp)
        and orders.ordered_at >= cast({{ as_of(order_windows | max) }} as timestamp)
        and {{ propensity_sample_filter('orders.customer_id', 'select customers.customer_id from customers') }}
    group by orders.customer_id, lines.product_id
),

email_events as (
    select
        customer_id,
        event_type,
        cast(occurred_at as date) as event_date
    from {{ ref('stg_raw__email_events') }}
    where
        customer_id is not null
        and occurred_at < cast({{ as_of() }} as timestamp)
        and {{ propensity_sample_filter('customer_id', 'select customers.customer_id from customers') }}
),

order_aggregates as (
    select
        customer_id,
        sum(case when is_purchase then 1 else 0 end) as order_count,
        {{ money_sum('net_amount') }} as spend_total,
        max(case when is_purchase then order_date end) as last_order_date,
        min(case when is_purchase then order_date end) as first_order_date,
        {{ purchase_days('is_first_purchase_of_day') }} as purchase_days,
        {{ money_sum('case when is_purchase and not is_on_first_purchase_day then net_amount else 0 end') }}
            as repeat_day_spend,
        {%- for w in order_windows %}
            sum(case when is_purchase and order_date >= {{ as_of(w) }} then 1 else 0 end) as order_count_{{ w }}d,
            {{ money_sum('case when order_date >= ' ~ as_of(w) ~ ' then net_amount else 0 end') }} as spend_{{ w }}d,
            sum(case when order_date >= {{ as_of(w) }} then items else 0 end) as items_{{ w }}d,
            sum(case when has_return and order_date >= {{ as_of(w) }} then 1 else 0 end) as return_count_{{ w }}d,
            {{ money_sum('case when order_date >= ' ~ as_of(w) ~ ' then return_amount else 0 end') }} as return_amount_{{ w }}d
            {%- if not loop.last %},{% endif %}
        {%- endfor %}
    from orders
    group by customer_id
),

-- Materialized: the (customer, product) aggregate runs to the end (spilling if it must) before
-- the order aggregates start, instead of both holding memory at once. At 10M customers under a
-- 12 GB memory_limit the two together ran out of memory; one after the other the model builds
-- (docs/benchmarks.md, `scale`), and at 1M it is no slower.
product_aggregates as {{ cte_hint('materialized') }}(
    select
        customer_id,
        {%- for w in order_windows %}
            sum(case when last_purchase_date >= {{ as_of(w) }} then 1 else 0 end) as distinct_products_{{ w }}d
            {%- if not loop.last %},{% endif %}
        {%- endfor %}
    from product_purchases
    group by customer_id
),

email_aggregates as (
    select
        customer_id,
        {%- for w in email_windows %}
            sum(case when event_type = 'sent' and event_date >= {{ as_of(w) }} then 1 else 0 end) as email_sends_{{ w }}d,
            sum(case when event_type = 'open' and event_date >= {{ as_of(w) }} then 1 else 0 end) as email_opens_{{ w }}d,
            sum(case when event_type = 'click' and event_date >= {{ as_of(w) }} then 1 else 0 end) as email_clicks_{{ w }}d,
        {%- endfor %}
        max(case when event_type = 'open' then event_date end) as last_open_date,
        max(case when event_type = 'click' then event_date end) as last_click_date,
        max(case when event_type = 'unsubscribe' then 1 else 0 end) as is_unsubscribed
    from email_events
    group by customer_id
),

joined as (
    select
        customers.customer_id,
        customers.created_at,
        customers.is_email_opt_in,
        customers.is_vip,
        coalesce(order_aggregates.order_count, 0) as order_count,
        coalesce(order_aggregates.spend_total, 0) as spend_total,
        order_aggregates.last_order_date,
        order_aggregates.first_order_date,
        coalesce(order_aggregates.purchase_days, 0) as purchase_days,
        coalesce(order_aggregates.repeat_day_spend, 0) as repeat_day_spend,
        {%- for w in order_windows %}
            coalesce(order_aggregates.order_count_{{ w }}d, 0) as order_count_{{ w }}d,
            coalesce(order_aggregates.spend_{{ w }}d, 0) as spend_{{ w }}d,
            coalesce(order_aggregates.items_{{ w }}d, 0) as items_{{ w }}d,
            coalesce(product_aggregates.distinct_products_{{ w }}d, 0) as distinct_products_{{ w }}d,
            coalesce(order_aggregates.return_count_{{ w }}d, 0) as return_count_{{ w }}d,
            coalesce(order_aggregates.return_amount_{{ w }}d, 0) as return_amount_{{ w }}d,
        {%- endfor %}
        {%- for w in email_windows %}
            coalesce(email_aggregates.email_sends_{{ w }}d, 0) as email_sends_{{ w }}d,
            coalesce(email_aggregates.email_opens_{{ w }}d, 0) as email_opens_{{ w }}d,
            coalesce(email_aggregates.email_clicks_{{ w }}d, 0) as email_clicks_{{ w }}d,
        {%- endfor %}
        email_aggregates.last_open_date,
        email_aggregates.last_click_date,
        coalesce(email_aggregates.is_unsubscribed, 0) as is_unsubscribed
    from customers
    left join order_aggregates on customers.customer_id = order_aggregates.customer_id
    left join product_aggregates on customers.customer_id = product_aggregates.customer_id
    left join email_aggregates on customers.customer_id = email_aggregates.customer_id
),

-- The RFM quintiles rank every buyer created before T. At a sampled training cutoff
-- order_aggregates holds the sampled customers only, so the three columns come from every order
-- before T instead (the branch not taken is a constant false the engine skips).
buyer_aggregates as (
    select
        customer_id,
        last_order_date,
        order_count,
        spend_total
    from order_aggregates
    where {{ 'false' if sample_only else 'true' }}
    union all
    select
        customer_id,
        max(case when is_purchase then order_date end) as last_order_date,
        sum(case when is_purchase then 1 else 0 end) as order_count,
        {{ money_sum('net_amount') }} as spend_total
    from {{ ref('int_orders_summarised') }}
    where {{ 'true' if sample_only else 'false' }} and order_date < {{ as_of() }}
    group by customer_id
),

buyers as (
    select
        buyer_aggregates.customer_id,
        buyer_aggregates.last_order_date,
        buyer_aggregates.order_count,
        buyer_aggregates.spend_total
    from buyer_aggregates
    inner join {{ ref('stg_raw__customers') }} as population
        on buyer_aggregates.customer_id = population.customer_id
    where
        buyer_aggregates.order_count > 0
        and population.created_at < cast({{ as_of() }} as timestamp)
),

-- RFM quintiles among buyers only (the others get 0): the ranks sort 4 columns, not the whole
-- feature row.
rfm_scores as (
    select
        customer_id,
        {{ rfm_quintile('last_order_date') }} as rfm_recency_score,
        {{ rfm_quintile('order_count') }} as rfm_frequency_score,
        {{ rfm_quintile('spend_total') }} as rfm_monetary_score
    from buyers
),

scored as (
    select
        joined.*,
        {{ days_since_capped('joined.last_order_date') }} as days_since_last_order,
        coalesce(rfm_scores.rfm_recency_score, 0) as rfm_recency_score,
        coalesce(rfm_scores.rfm_frequency_score, 0) as rfm_frequency_score,
        coalesce(rfm_scores.rfm_monetary_score, 0) as rfm_monetary_score
    from joined
    left join rfm_scores on joined.customer_id = rfm_scores.customer_id
),

-- BTYD columns follow lifetimes' summary_data_from_transaction_data with
-- observation_period_end = T - 1 day: purchase days, not orders.
final as (
    select
        customer_id,
        {{ as_of() }} as as_of_date,
        cast({{ days_between('cast(created_at as date)', as_of()) }} as integer) as tenure_days,
        cast(days_since_last_order as integer) as days_since_last_order,
        cast(order_count as integer) as order_count,
        cast(spend_total as double) as spend_total,
        cast(case when order_count > 0 then {{ round_quotient('spend_total', 'order_count', 2) }} else 0 end as double)
            as avg_order_value,
        rfm_recency_score,
        rfm_frequency_score,
        rfm_monetary_score,
        case
            {%- for code, name, condition in rfm_segments('rfm_recency_score', 'rfm_frequency_score') %}
                when {{ condition }} then '{{ name }}'
            {%- endfor %}
        end as rfm_segment,
        case
            {%- for code, name, condition in rfm_segments('rfm_recency_score', 'rfm_frequency_score') %}
                when {{ condition }} then {{ code }}
            {%- endfor %}
        end as rfm_segment_code,
        cast(greatest(purchase_days - 1, 0) as integer) as btyd_frequency,
        cast(coalesce({{ days_between('first_order_date', 'last_order_date') }}, 0) as integer) as btyd_recency_days,
        cast(coalesce({{ days_between('first_order_date', as_of(1)) }}, 0) as integer) as btyd_age_days,
        cast(case when purchase_days > 1 then {{ round_quotient('repeat_day_spend', '(purchase_days - 1)', 6) }} else 0 end as double)
            as btyd_monetary_value,
        {%- for w in order_windows %}
            cast(order_count_{{ w }}d as integer) as order_count_{{ w }}d,
            cast(spend_{{ w }}d as double) as spend_{{ w }}d,
            cast(items_{{ w }}d as integer) as items_{{ w }}d,
            cast(distinct_products_{{ w }}d as integer) as distinct_products_{{ w }}d,
            cast(return_count_{{ w }}d as integer) as return_count_{{ w }}d,
            cast(return_amount_{{ w }}d as double) as return_amount_{{ w }}d,
        {%- endfor %}
        {%- for w in email_windows %}
            cast(email_sends_{{ w }}d as integer) as email_sends_{{ w }}d,
            cast(email_opens_{{ w }}d as integer) as email_opens_{{ w }}d,
            cast(email_clicks_{{ w }}d as integer) as email_clicks_{{ w }}d,
            cast(case
                when email_sends_{{ w }}d > 0 then {{ round_quotient('email_opens_' ~ w ~ 'd', 'email_sends_' ~ w ~ 'd', 6, at_most=1) }}
                else 0
            end as double) as email_open_rate_{{ w }}d,
            cast(case
                when email_sends_{{ w }}d > 0 then {{ round_quotient('email_clicks_' ~ w ~ 'd', 'email_sends_' ~ w ~ 'd', 6, at_most=1) }}
                else 0
            end as double) as email_click_rate_{{ w }}d,
        {%- endfor %}
        cast({{ days_since_capped('last_open_date') }} as integer) as days_since_last_open,
        cast({{ days_since_capped('last_click_date') }} as integer) as days_since_last_click,
        cast(is_unsubscribed as integer) as is_unsubscribed,
        cast(case when is_email_opt_in then 1 else 0 end as integer) as is_email_opt_in,
        cast(case when is_vip then 1 else 0 end as integer) as is_vip
    from scored
)

select * from final
