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

final as (
    select
        *,
        case
            when is_purchase
                then lead(order_date) over (
                    partition by customer_id, product_group, is_purchase
                    order by order_date, order_id
                )
        end as next_purchase_date
    from unioned
)

select * from final
