with kept as (
    select * from classified
    where drop_rule is null
),

invoices as (
    select * from invoices
),

final as (
    select
        invoices.order_id,
        kept.product_id,
        cast(kept.quantity as integer) as quantity,
        kept.unit_price
    from kept
    inner join invoices on kept.invoice = invoices.invoice
)

select * from final
order by order_id, product_id, quantity, unit_price
