{#- The cases of a product-group rule match (macro product_group_match): one row per case whose
    result differs from the expected one. models_py.ingest._groups.MATCH_EXPRESSION is this
    expression (tests/dbt/test_project.py checks it), tested on the same kinds of cases. -#}
with cases as (
    select
        cases.matched_value,
        cases.pattern,
        cases.expected
    from (
        values
        ('Red Wine', 'wine', true),
        ('Red Wine', '^wine$', false),
        ('wine', '^wine$', true),
        ('WINE', 'wine', true),
        ('Sparkling wine', '^(?:beer)$|wine', true),
        ('Candy bar', 'sweet|chocolate', false),
        ('Chocolate', 'sweet|chocolate', true),
        ('p-12', '^p-1[0-9]$', true),
        ('a.b', 'a\.b', true),
        ('axb', 'a\.b', false),
        (null, '.*', true),
        (null, '^$', true),
        (null, 'wine', false),
        -- RE2 syntax (DuckDB), not Python's re: literal quoting, Unicode classes, word boundaries
        ('a.b', '\Qa.b\E', true),
        ('axb', '\Qa.b\E', false),
        ('Café', '^\pL+$', true),
        ('cafe 2', '^\pL+$', false),
        ('winery tour', '\bwine\b', false)
    ) as cases (matched_value, pattern, expected)
),

final as (
    select
        matched_value,
        pattern,
        expected,
        'product_group_match(' || coalesce('''' || matched_value || '''', 'null') || ', ''' || pattern
        || ''') should be ' || cast(expected as {{ string_type() }}) as problem
    from cases
    where {{ product_group_match('matched_value', 'pattern') }} != expected
)

select * from final
