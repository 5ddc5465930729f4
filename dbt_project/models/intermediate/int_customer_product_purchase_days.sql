{#-
  Distinct (customer, product, purchase day) for purchase lines (quantity > 0), with the next day
  the customer bought the same product. At cutoff T, the products bought in [T - w, T) are counted
  once each by the rows with purchase_date in [T - w, T) whose next purchase day is >= T (or none):
  each (customer, product) has exactly one such "last purchase before T" row, so distinct products
  per window is a plain conditional sum, with no count(distinct) per cutoff.
-#}
with orders as (
    select
        order_id,
        customer_id,
        cast(ordered_at as date) as order_date
    from {{ ref('stg_raw__orders') }}
    where customer_id is not null and ordered_at is not null
),

lines as (
    select
        order_id,
        product_id
    from {{ ref('stg_raw__order_lines') }}
    where quantity > 0
),

purchase_days as (
    select
        orders.customer_id,
        lines.product_id,
        orders.order_date as purchase_date
    from lines
    inner join orders on lines.order_id = orders.order_id
    group by orders.customer_id, lines.product_id, orders.order_date
),

final as (
    select
        customer_id,
        product_id,
        purchase_date,
        lead(purchase_date) over (
            partition by customer_id, product_id
            order by purchase_date
        ) as next_purchase_date
    from purchase_days
)

select * from final
