{#- A product belongs to every group one of whose patterns matches, plus the built-in group `any`. -#}
{%- set matched_field -%}
    case rules.match_on
        when 'category' then products.category
        when 'product_name' then products.product_name
        when 'product_id' then products.product_id
    end
{%- endset %}

with products as (
    select * from {{ ref('stg_raw__products') }}
),

rules as (
    select * from {{ ref('stg_raw__product_group_rules') }}
),

-- One alternation per (group, field): DuckDB compiles a pattern read from a column once per row,
-- so the match runs once per product and (group, field), not once per rule.
combined_rules as (
    select
        product_group,
        match_on,
        {{ string_agg_ordered("'(?:' || pattern || ')'", "'|'", 'pattern') }} as pattern
    from rules
    where product_group != 'any'
    group by product_group, match_on
),

matched as (
    select distinct
        products.product_id,
        rules.product_group
    from products
    inner join combined_rules as rules
        on {{ product_group_match(matched_field, 'rules.pattern') }}
),

any_group as (
    select
        product_id,
        'any' as product_group
    from products
),

final as (
    select * from matched
    union all
    select * from any_group
)

select * from final
