{#-
  One row per order (orders without lines are dropped): collapses the line table once so every
  cutoff reads orders, not lines. Money is net line amount (returns, negative quantity, subtract)
  rounded to cents as decimal(18, 2), so sums are exact and rebuilds identical.
  A purchase order has at least one line with quantity > 0; return-only orders are not purchases.
  BTYD helpers, neither depends on the cutoff (a cutoff is a midnight: it sees a whole day or
  none of it): is_on_first_purchase_day marks the purchase orders placed on the customer's first
  purchase day; is_first_purchase_of_day marks one purchase order per (customer, day), the
  lowest order_id, so the purchase days before a cutoff are a plain count of flagged orders. Each
  cutoff's features used to count distinct days instead, which made the engine hold every order
  of the cutoff for a second pass (at 10M customers 90 of the 158 s of one cutoff's features).
  Daily runs (dbt var intermediate_lookback_days set): incremental, the orders of the recent days
  only are recomputed (macros/intermediate/recent_orders.sql); a customer's first purchase day
  then comes from the stored orders before the window and the recomputed ones.
-#}
{{
    config(
        materialized=propensity_intermediate_materialized(),
        incremental_strategy='replace_recent',
        recent_column='order_date',
        on_schema_change='fail',
    )
}}
{%- set since = propensity_replace_since(this, 'order_date') if is_incremental() else none %}

with orders as (
    select * from {{ ref('stg_raw__orders') }}
    {%- if since is not none %}
        where ordered_at >= cast({{ propensity_date_literal(since) }} as timestamp)
    {%- endif %}
),

lines as (
    select * from {{ ref('stg_raw__order_lines') }}
    {%- if since is not none %}
        where order_id in (select orders.order_id from orders)
    {%- endif %}
),

lines_per_order as (
    select
        order_id,
        round(sum(line_amount), 2) as net_amount,
        round(sum(case when quantity < 0 then -line_amount else 0 end), 2) as return_amount,
        sum(case when quantity > 0 then quantity else 0 end) as items,
        max(case when quantity > 0 then 1 else 0 end) as has_purchase_line,
        max(case when quantity < 0 then 1 else 0 end) as has_return_line
    from lines
    group by order_id
),

joined as (
    select
        orders.order_id,
        orders.customer_id,
        orders.ordered_at,
        cast(orders.ordered_at as date) as order_date,
        lines_per_order.has_purchase_line = 1 as is_purchase,
        lines_per_order.has_return_line = 1 as has_return,
        cast(coalesce(lines_per_order.net_amount, 0) as decimal(18, 2)) as net_amount,
        cast(coalesce(lines_per_order.return_amount, 0) as decimal(18, 2)) as return_amount,
        cast(lines_per_order.items as bigint) as items
    from orders
    inner join lines_per_order on orders.order_id = lines_per_order.order_id
    where orders.customer_id is not null and orders.ordered_at is not null
),

first_purchase_day as (
    select
        customer_id,
        min(order_date) as first_purchase_date
    from (
        select
            customer_id,
            order_date
        from joined
        where is_purchase
        {%- if since is not none %}
            union all
            select
                stored.customer_id,
                stored.order_date
            from {{ this }} as stored
            where
                stored.is_purchase
                and stored.order_date < {{ propensity_date_literal(since) }}
                and stored.customer_id in (select joined.customer_id from joined)
        {%- endif %}
    ) as purchases
    group by customer_id
),

{# A daily run recomputes whole days (from a midnight on), so every order of a recomputed
   (customer, day) is in `joined`. #}
final as (
    select
        joined.*,
        joined.is_purchase and joined.order_date = first_purchase_day.first_purchase_date
            as is_on_first_purchase_day,
        case
            when joined.is_purchase
                then row_number() over (
                    partition by joined.customer_id, joined.order_date, joined.is_purchase
                    order by joined.order_id
                ) = 1
            else false
        end as is_first_purchase_of_day
    from joined
    left join first_purchase_day on joined.customer_id = first_purchase_day.customer_id
)

select * from final
