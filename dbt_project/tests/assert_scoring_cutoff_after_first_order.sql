{{ config(severity='warn') }}
{#-
  A scoring cutoff on or before the first order leaves no customer with history at that cutoff:
  the scoring features are empty and nothing is scored. Say so instead of building empty tables.
-#}
with cutoffs as (
    select * from {{ ref('dim_cutoffs') }}
),

orders as (
    select * from {{ ref('stg_raw__orders') }}
),

first_order as (
    select cast(min(ordered_at) as date) as first_order_date
    from orders
),

final as (
    select
        'scoring cutoff ' || cast(cutoffs.as_of_date as {{ string_type() }})
        || ' is before the first order (' || cast(first_order.first_order_date as {{ string_type() }})
        || '): no customer has history at that cutoff, so nothing is scored. Set dbt var '
        || 'scoring_cutoff after the first order, or leave it null (the day after the last order).'
            as problem
    from cutoffs
    cross join first_order
    where
        cutoffs.cutoff_role = 'scoring'
        and cutoffs.as_of_date <= first_order.first_order_date
)

select * from final
