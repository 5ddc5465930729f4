with source as (
    select * from {{ source('raw', 'email_events') }}
),

final as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(campaign_id as varchar) as campaign_id,
        lower(cast(event_type as varchar)) as event_type,
        cast(occurred_at as timestamp) as occurred_at
    from source
)

select * from final
