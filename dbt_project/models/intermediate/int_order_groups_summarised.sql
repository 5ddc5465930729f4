{#-
  One row per (order, product group), `any` included: the configured groups of
  int_order_groups_from_lines plus every order of int_orders_summarised as group `any`. A view:
  the rows of `any` are the orders table, so storing them again would only cost a write; a cutoff's
  filter on order_date reaches both tables through the union.
-#}
{{ config(materialized='view') }}

with configured_groups as (
    select
        order_id,
        customer_id,
        order_date,
        product_group,
        is_purchase,
        net_amount
    from {{ ref('int_order_groups_from_lines') }}
),

any_group as (
    select
        order_id,
        customer_id,
        order_date,
        'any' as product_group,
        is_purchase,
        net_amount
    from {{ ref('int_orders_summarised') }}
),

final as (
    select * from configured_groups
    union all
    select * from any_group
)

select * from final
