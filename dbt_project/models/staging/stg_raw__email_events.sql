{%- set columns = raw_contract_columns(source('raw', 'email_events'), {
    'customer_id': 'bigint', 'campaign_id': 'varchar', 'event_type': 'varchar',
    'occurred_at': 'timestamp'}) %}

with source as (
    select * from {{ source('raw', 'email_events') }}
),

final as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(campaign_id as varchar) as campaign_id,
        lower(cast(event_type as varchar)) as event_type,
        {{ raw_timestamp('occurred_at', columns) }} as occurred_at
    from source
)

select * from final
