{%- set columns = raw_contract_columns('raw', 'treatments') %}

with source as (
    select * from {{ source('raw', 'treatments') }}
),

final as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(experiment_id as varchar) as experiment_id,
        cast(arm as varchar) as arm,
        {{ raw_timestamp('assigned_at', columns) }} as assigned_at
    from source
)

select * from final
