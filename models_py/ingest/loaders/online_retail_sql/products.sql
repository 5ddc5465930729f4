with kept as (
    select * from classified
    where drop_rule is null
),

product_lines as (
    select * from classified
    where (drop_rule is null or drop_rule = 'missing_customer') and description is not null
),

name_counts as (
    select
        product_id,
        description,
        count(*) as n_lines
    from product_lines
    group by product_id, description
),

ranked_names as (
    select
        product_id,
        description,
        row_number() over (
            partition by product_id order by n_lines desc, description asc
        ) as name_rank
    from name_counts
),

sold as (
    select distinct product_id from kept
),

final as (
    select
        sold.product_id,
        ranked_names.description as product_name,
        cast(null as varchar) as category
    from sold
    left join ranked_names
        on sold.product_id = ranked_names.product_id and ranked_names.name_rank = 1
)

select * from final
order by product_id
