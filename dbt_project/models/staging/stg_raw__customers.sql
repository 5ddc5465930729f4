{%- set columns = raw_contract_columns('raw', 'customers') %}

with source as (
    select * from {{ source('raw', 'customers') }}
),

final as (
    select
        cast(customer_id as bigint) as customer_id,
        {{ raw_timestamp('created_at', columns) }} as created_at,
        cast(country as {{ string_type() }}) as country,
        coalesce(cast(email_opt_in as boolean), false) as is_email_opt_in,
        coalesce(cast(is_vip as boolean), false) as is_vip
    from source
)

select * from final
