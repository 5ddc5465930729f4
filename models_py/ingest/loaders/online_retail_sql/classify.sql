create temp table classified as
with source as (
    select * from source_lines
),

copies as (
    select
        *,
        row_number() over (
            partition by
                invoiceno, stockcode, description, quantity, invoicedate, unitprice, customerid,
                country
        ) as copy_number
    from source
),

prepared as (
    select
        upper(trim(invoiceno)) as invoice,
        nullif(upper(trim(stockcode)), '') as product_id,
        nullif(trim(description), '') as description,
        quantity,
        unitprice as unit_price,
        customerid as customer_id,
        invoicedate as invoiced_at,
        nullif(trim(country), '') as country,
        copy_number,
        coalesce(starts_with(upper(trim(invoiceno)), 'C'), false) as is_cancellation,
        coalesce(regexp_full_match(upper(trim(invoiceno)), 'C?[0-9]+'), false) as is_sales_invoice,
        try_cast(nullif(regexp_replace(invoiceno, '[^0-9]', '', 'g'), '') as bigint)
            as invoice_number
    from copies
),

final as (
    select
        *,
        case
            when copy_number > 1 then 'exact_duplicate'
            when
                invoice is null or product_id is null or quantity is null
                or unit_price is null or invoiced_at is null
                then 'missing_value'
            when
                list_contains($non_product_codes, product_id)
                or regexp_matches(product_id, $non_product_pattern)
                then 'non_product_code'
            when quantity < 0 and not is_cancellation then 'stock_adjustment'
            when quantity > 0 and is_cancellation then 'cancellation_positive_quantity'
            when quantity = 0 then 'quantity_zero'
            when unit_price <= 0 then 'price_not_positive'
            when not is_sales_invoice or invoice_number is null then 'adjustment_invoice'
            when customer_id is null then 'missing_customer'
        end as drop_rule
    from prepared
)

select * from final
