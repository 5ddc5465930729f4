{#-
  Email events collapsed once to one row per customer and day, counts per event type. Counts are
  integers (not the hugeint of sum): every cutoff sums them again, and integer sums are faster.
-#}
with events as (
    select * from {{ ref('stg_raw__email_events') }}
),

final as (
    select
        customer_id,
        cast(occurred_at as date) as event_date,
        cast(sum(case when event_type = 'sent' then 1 else 0 end) as integer) as sends,
        cast(sum(case when event_type = 'open' then 1 else 0 end) as integer) as opens,
        cast(sum(case when event_type = 'click' then 1 else 0 end) as integer) as clicks,
        cast(sum(case when event_type = 'unsubscribe' then 1 else 0 end) as integer) as unsubscribes
    from events
    where customer_id is not null and occurred_at is not null
    group by customer_id, cast(occurred_at as date)
)

select * from final
