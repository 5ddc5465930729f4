"""One product-group matcher: the same cases through `match_patterns` (what the generator and
rule validation use) and through the SQL of dbt's `int_products_mapped_to_groups` in DuckDB."""

from __future__ import annotations

import duckdb
import pytest

from models_py._errors import ConfigError
from models_py.ingest._groups import match_patterns, parse_group_rules, pattern_error

#: (pattern, value, matches)
CASES = [
    ("wine", "Red Wine Glass", True),  # a search, not a full match
    (r"\bwine\b", "red wine glass", True),  # word boundaries
    (r"\bwine\b", "winery tour", False),
    ("xmas|christmas", "CHRISTMAS TREE", True),  # alternation, case-insensitive
    ("xmas|christmas", "easter egg", False),
    ("^Wine$", "WINE", True),  # anchors and case
    ("^wine$", "wine rack", False),
    ("^$", None, True),  # a NULL field matches as the empty string
    ("wine", None, False),
    (r"\Qa.b\E", "a.b", True),  # RE2 literal quoting (not Python `re` syntax)
    (r"\Qa.b\E", "axb", False),
    (r"^\pL+$", "Café", True),  # RE2 Unicode class (not Python `re` syntax)
    (r"^\pL+$", "cafe 2", False),
]

#: Patterns Python's `re` accepts and RE2 refuses.
PYTHON_ONLY = [r"wine(?!ry)", r"(a)\1", r"(?<=red )wine"]

#: The join of dbt's int_products_mapped_to_groups (one rule per row, field `product_name`).
DBT_SQL = """
select products.product_id, rules.product_group
from products
inner join rules
    on regexp_matches(
        coalesce(
            case rules.match_on
                when 'category' then products.category
                when 'product_name' then products.product_name
                when 'product_id' then products.product_id
            end,
            ''
        ),
        rules.pattern,
        'i'
    )
"""


def _dbt_match(pattern: str, value: str | None) -> bool:
    con = duckdb.connect()
    con.execute(
        "create table products (product_id varchar, product_name varchar, category varchar)"
    )
    con.execute("create table rules (product_group varchar, match_on varchar, pattern varchar)")
    con.execute("insert into products values ('p1', ?, 'c')", [value])
    con.execute("insert into rules values ('g', 'product_name', ?)", [pattern])
    return bool(con.execute(DBT_SQL).fetchall())


@pytest.mark.parametrize(("pattern", "value", "expected"), CASES)
def test_python_and_dbt_sql_agree(pattern: str, value: str | None, expected: bool) -> None:
    assert bool(match_patterns([value], [pattern])[0, 0]) is expected
    assert _dbt_match(pattern, value) is expected


@pytest.mark.parametrize("pattern", PYTHON_ONLY)
def test_patterns_re2_refuses_are_refused_in_python_and_sql(pattern: str) -> None:
    assert pattern_error(pattern) is not None
    with pytest.raises(duckdb.Error):
        _dbt_match(pattern, "red wine")
    with pytest.raises(ConfigError, match=r"not a valid regular expression \(RE2 syntax"):
        parse_group_rules({"product_groups": {"wine": {"product_name": [pattern]}}})


def test_re2_only_patterns_are_accepted_by_validation() -> None:
    rules = parse_group_rules({"product_groups": {"lit": {"product_name": [r"\Qa.b\E", r"\pL"]}}})
    assert [r.pattern for r in rules] == [r"\Qa.b\E", r"\pL"]


def test_matrix_shape_and_many_patterns() -> None:
    hits = match_patterns(["red wine", "xmas tree", None], ["wine", "xmas", "^$"])
    assert hits.tolist() == [[True, False, False], [False, True, False], [False, False, True]]
