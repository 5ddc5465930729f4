{#-
  Experiment assignments. `discount_pct` is an optional raw column (the discount the arm gives, in
  percent, 0 for no discount): when raw.treatments has it, fct_experiment_examples derives the
  list value, discount cost and margin of the outcomes from it; otherwise it is null (an
  experiment without a discount, e.g. an e-mail test) and so are those money outcomes.
-#}
{%- set columns = raw_contract_columns('raw', 'treatments') %}

with source as (
    select * from {{ source('raw', 'treatments') }}
),

final as (
    select
        cast(customer_id as bigint) as customer_id,
        cast(experiment_id as {{ string_type() }}) as experiment_id,
        cast(arm as {{ string_type() }}) as arm,
        {{ raw_timestamp('assigned_at', columns) }} as assigned_at,
        {%- if 'discount_pct' in columns %}
            cast(discount_pct as double) as discount_pct
        {%- else %}
            cast(null as double) as discount_pct
        {%- endif %}
    from source
)

select * from final
