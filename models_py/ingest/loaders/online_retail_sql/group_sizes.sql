with rules as (
    select * from group_rules
),

combined_rules as (
    -- one alternation per group and field: DuckDB compiles a non-constant pattern per row
    select
        product_group,
        match_on,
        string_agg('(?:' || pattern || ')', '|') as pattern
    from rules
    group by product_group, match_on
),

products as (
    select * from products_out
),

buyers as (
    select distinct
        classified.product_id,
        classified.customer_id
    from classified
    where classified.drop_rule is null and classified.quantity > 0
),

matched as (
    select distinct
        combined_rules.product_group,
        products.product_id
    from combined_rules
    inner join products
        on regexp_matches(
            coalesce(
                case combined_rules.match_on
                    when 'category' then products.category
                    when 'product_name' then products.product_name
                    when 'product_id' then products.product_id
                end,
                ''
            ),
            combined_rules.pattern,
            'i'
        )
),

groups as (
    select distinct product_group from rules
),

final as (
    select
        groups.product_group,
        count(distinct matched.product_id) as n_products,
        count(distinct buyers.customer_id) as n_buyers
    from groups
    left join matched on groups.product_group = matched.product_group
    left join buyers on matched.product_id = buyers.product_id
    group by groups.product_group
)

select * from final
order by product_group
