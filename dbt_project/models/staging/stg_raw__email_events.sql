{%- set columns = raw_contract_columns('raw', 'email_events') %}

with source as (
    select * from {{ source('raw', 'email_events') }}
),

final as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(campaign_id as {{ string_type() }}) as campaign_id,
        lower(cast(event_type as {{ string_type() }})) as event_type,
        {{ raw_timestamp('occurred_at', columns) }} as occurred_at
    from source
)

select * from final
