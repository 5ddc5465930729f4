create temp table invoices as
with kept as (
    select * from classified
    where drop_rule is null
),

per_invoice as (
    select
        invoice,
        min(customer_id) as customer_id,
        min(invoiced_at) as ordered_at,
        bool_or(is_cancellation) as is_cancellation,
        min(invoice_number) as invoice_number
    from kept
    group by invoice
),

numbered as (
    select
        *,
        row_number() over (
            partition by invoice_number order by is_cancellation, invoice
        ) - 1 as collision_rank
    from per_invoice
),

final as (
    select
        invoice,
        invoice_number + collision_rank * $offset as order_id,
        customer_id,
        ordered_at,
        is_cancellation,
        collision_rank > 0 as is_offset
    from numbered
)

select * from final
