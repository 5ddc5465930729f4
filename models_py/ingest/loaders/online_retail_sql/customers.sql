with kept as (
    select * from classified
    where drop_rule is null
),

country_counts as (
    select
        customer_id,
        country,
        count(distinct invoice) as n_invoices
    from kept
    where country is not null
    group by customer_id, country
),

ranked_countries as (
    select
        customer_id,
        country,
        row_number() over (
            partition by customer_id order by n_invoices desc, country asc
        ) as country_rank
    from country_counts
),

firsts as (
    select
        customer_id,
        min(invoiced_at) as created_at
    from kept
    group by customer_id
),

final as (
    select
        firsts.customer_id,
        firsts.created_at,
        ranked_countries.country,
        false as email_opt_in,
        false as is_vip
    from firsts
    left join ranked_countries
        on
            firsts.customer_id = ranked_countries.customer_id
            and ranked_countries.country_rank = 1
)

select * from final
order by customer_id
