{#- Email events collapsed once to one row per customer and day, counts per event type. -#}
with events as (
    select * from {{ ref('stg_raw__email_events') }}
),

final as (
    select
        customer_id,
        cast(occurred_at as date) as event_date,
        sum(case when event_type = 'sent' then 1 else 0 end) as sends,
        sum(case when event_type = 'open' then 1 else 0 end) as opens,
        sum(case when event_type = 'click' then 1 else 0 end) as clicks,
        sum(case when event_type = 'unsubscribe' then 1 else 0 end) as unsubscribes
    from events
    where customer_id is not null and occurred_at is not null
    group by customer_id, cast(occurred_at as date)
)

select * from final
