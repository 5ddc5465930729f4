{#-
  One row per (order, configured product group) for the groups an order's lines belong to: net
  amount of the group's lines (rounded to cents) and whether the order buys the group (a line of
  the group with quantity > 0). Group `any` is not stored here: it is int_orders_summarised itself
  (every product is in `any`), and int_order_groups_summarised (a view) adds it, so the 10M+ rows
  of `any` are not written twice.
  One aggregate of the lines joined to their group (then to their order), no window: each cutoff
  reads the rows before it (the last purchase of a group is a max per cutoff).
  Daily runs (dbt var intermediate_lookback_days set): incremental like int_orders_summarised,
  the orders of the recent days only; every row is rebuilt when the product-group mapping
  differs from the one the table was built with (stored as the table comment).
-#}
{{
    config(
        materialized=propensity_intermediate_materialized(),
        incremental_strategy='replace_recent',
        recent_column='order_date',
        replace_state='product_groups',
        post_hook="{{ propensity_store_state() }}",
        on_schema_change='fail',
    )
}}
{%- set since = propensity_replace_since(this, 'order_date', propensity_replace_state(), announce=true)
    if is_incremental() else none %}

with orders as (
    select
        order_id,
        customer_id,
        order_date
    from {{ ref('int_orders_summarised') }}
    {%- if since is not none %}
        where order_date >= {{ propensity_date_literal(since) }}
    {%- endif %}
),

lines as (
    select
        order_id,
        product_id,
        quantity,
        line_amount
    from {{ ref('stg_raw__order_lines') }}
    {%- if since is not none %}
        where order_id in (select orders.order_id from orders)
    {%- endif %}
),

{# Groups are aggregated under a small integer key and named after the aggregate: the group-by
    hashes (order_id, integer), not (order_id, group name). #}
mapping as (
    select
        product_id,
        product_group,
        cast(dense_rank() over (order by product_group) as integer) as group_key
    from {{ ref('int_products_mapped_to_groups') }}
    where product_group != 'any'
),

group_names as (
    select distinct
        group_key,
        product_group
    from mapping
),

{# Aggregate the lines per (order, group) first, then attach customer and date: the group-by key
    is two columns and the join to orders reads the aggregated rows, not every line. #}
group_lines as (
    select
        lines.order_id,
        mapping.group_key,
        max(case when lines.quantity > 0 then 1 else 0 end) = 1 as is_purchase,
        cast(coalesce(round(sum(lines.line_amount), 2), 0) as decimal(18, 2)) as net_amount
    from lines
    inner join mapping on lines.product_id = mapping.product_id
    group by lines.order_id, mapping.group_key
),

configured_groups as (
    select
        orders.order_id,
        orders.customer_id,
        orders.order_date,
        group_names.product_group,
        group_lines.is_purchase,
        group_lines.net_amount
    from group_lines
    inner join orders on group_lines.order_id = orders.order_id
    inner join group_names on group_lines.group_key = group_names.group_key
)

select * from configured_groups
