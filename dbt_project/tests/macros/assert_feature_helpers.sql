{#-
  The feature helpers on fixed inputs, for the cutoff T = 2024-03-01 (set as the materialization
  propensity_by_cutoff sets it): as_of(), days_since_capped() and rfm_quintile() with ties. One
  row per result that differs from the expected value. (Purchase days: the unit tests
  orders_summarised_returns_and_day_edges and customer_features_btyd_purchase_days_old_and_recent.)
-#}
{%- do model.update({'propensity_as_of_date': modules.datetime.date(2024, 3, 1)}) -%}
with dates as (
    select
        'as_of()' as helper,
        cast({{ as_of() }} as {{ string_type() }}) as result,
        '2024-03-01' as expected
    union all
    select
        'as_of(7)' as helper,
        cast({{ as_of(7) }} as {{ string_type() }}) as result,
        '2024-02-23' as expected
),

last_dates as (
    select
        last_dates.case_name,
        last_dates.last_date,
        last_dates.expected
    from (
        values
        ('yesterday', date '2024-02-29', 1),
        ('never', null, {{ propensity_days_cap() }}),
        ('long ago', date '2000-01-01', {{ propensity_days_cap() }})
    ) as last_dates (case_name, last_date, expected)
),

days_since as (
    select
        'days_since_capped, ' || case_name as helper,
        cast({{ days_since_capped('last_date') }} as {{ string_type() }}) as result,
        cast(expected as {{ string_type() }}) as expected
    from last_dates
),

-- quintiles among the rows of one select (ties share the lowest rank's score)
tied_values as (
    select
        tied_values.ranked_value,
        tied_values.expected
    from (values (5, 1), (5, 1), (7, 4)) as tied_values (ranked_value, expected)
),

spread_values as (
    select
        spread_values.ranked_value,
        spread_values.expected
    from (
        values (10, 1), (20, 1), (30, 2), (40, 2), (50, 3), (60, 3), (70, 4), (80, 4), (90, 5), (100, 5)
    ) as spread_values (ranked_value, expected)
),

quintiles as (
    select
        'rfm_quintile, tied ' || cast(ranked_value as {{ string_type() }}) as helper,
        cast({{ rfm_quintile('ranked_value') }} as {{ string_type() }}) as result,
        cast(expected as {{ string_type() }}) as expected
    from tied_values
    union all
    select
        'rfm_quintile, spread ' || cast(ranked_value as {{ string_type() }}) as helper,
        cast({{ rfm_quintile('ranked_value') }} as {{ string_type() }}) as result,
        cast(expected as {{ string_type() }}) as expected
    from spread_values
),

final as (
    select
        helper,
        result,
        expected,
        helper || ' = ' || coalesce(result, 'null') || ', expected ' || expected as problem
    from (
        select * from dates
        union all
        select * from days_since
        union all
        select * from quintiles
    ) as results
    where result is distinct from expected
)

select * from final
