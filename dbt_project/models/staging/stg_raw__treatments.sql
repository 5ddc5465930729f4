with source as (
    select * from {{ source('raw', 'treatments') }}
),

final as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(experiment_id as varchar) as experiment_id,
        cast(arm as varchar) as arm,
        cast(assigned_at as timestamp) as assigned_at
    from source
)

select * from final
