{#- The product groups that models are trained and scored for: configured groups matching at
    least one product, plus `any`. Groups whose rules match nothing are listed with is_active false
    (and a warning test) so a new warehouse builds before its groups are configured. -#}
with rules as (
    select * from {{ ref('stg_raw__product_group_rules') }}
),

mapping as (
    select * from {{ ref('int_products_mapped_to_groups') }}
),

configured as (
    select distinct product_group from rules
    where product_group != 'any'
    union
    select 'any' as product_group
),

sizes as (
    select
        product_group,
        count(*) as product_count
    from mapping
    group by product_group
),

final as (
    select
        configured.product_group,
        coalesce(sizes.product_count, 0) as product_count,
        coalesce(sizes.product_count, 0) > 0 as is_active
    from configured
    left join sizes on configured.product_group = sizes.product_group
)

select * from final
