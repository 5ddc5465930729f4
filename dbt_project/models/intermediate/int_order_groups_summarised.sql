{#-
  One row per (order, product group) for the groups an order's lines belong to: net amount of the
  group's lines (rounded to cents) and whether the order buys the group (a line of the group with
  quantity > 0). Group `any` comes from int_orders_summarised (every product is in `any`).
  next_purchase_date: the customer's next purchase order in the group (purchase rows only), so the
  last purchase before a cutoff is found without scanning all history per cutoff.
-#}
with orders as (
    select * from {{ ref('int_orders_summarised') }}
),

lines as (
    select * from {{ ref('stg_raw__order_lines') }}
),

mapping as (
    select * from {{ ref('int_products_mapped_to_groups') }}
    where product_group != 'any'
),

group_lines as (
    select
        lines.order_id,
        mapping.product_group,
        round(sum(lines.line_amount), 2) as net_amount,
        max(case when lines.quantity > 0 then 1 else 0 end) as has_purchase_line
    from lines
    inner join mapping on lines.product_id = mapping.product_id
    group by lines.order_id, mapping.product_group
),

configured_groups as (
    select
        orders.order_id,
        orders.customer_id,
        orders.order_date,
        group_lines.product_group,
        group_lines.has_purchase_line = 1 as is_purchase,
        cast(coalesce(group_lines.net_amount, 0) as decimal(18, 2)) as net_amount
    from group_lines
    inner join orders on group_lines.order_id = orders.order_id
),

any_group as (
    select
        order_id,
        customer_id,
        order_date,
        'any' as product_group,
        is_purchase,
        net_amount
    from orders
),

unioned as (
    select * from configured_groups
    union all
    select * from any_group
),

-- The next purchase date is a window over purchase rows only: the other rows get null without
-- being sorted.
purchases as (
    select
        *,
        lead(order_date) over (
            partition by customer_id, product_group
            order by order_date, order_id
        ) as next_purchase_date
    from unioned
    where is_purchase
),

non_purchases as (
    select
        *,
        cast(null as date) as next_purchase_date
    from unioned
    where is_purchase is not true
),

final as (
    select * from purchases
    union all
    select * from non_purchases
)

select * from final
