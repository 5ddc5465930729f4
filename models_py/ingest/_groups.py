"""Product groups as configuration: overlapping sets of products matched by rules.

A YAML file maps each group name to rules on `category`, `product_name` or `product_id`; each rule
is a list of case-insensitive regular expressions (RE2 syntax, as DuckDB's `regexp_matches`). A
product belongs to every group one of whose patterns matches. The built-in group `any` holds
every product and needs no rule. Rules are stored in the warehouse table
`raw.product_group_rules`, so each warehouse carries its own configuration and the dbt project is
never edited.

Example::

    product_groups:
      christmas:
        product_name: ["christmas", "xmas", "advent"]
      wine:
        category: ["^wine$"]
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from models_py._errors import ConfigError
from models_py._yaml import read_yaml_file

ANY_GROUP = "any"
MATCH_FIELDS = ("category", "product_name", "product_id")
GROUP_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

#: The one product-group matcher, exactly the expression of dbt's `int_products_mapped_to_groups`:
#: DuckDB's RE2 `regexp_matches` (a search, not a full match), case-insensitive, a NULL field
#: matching as the empty string. Python code matches through `match_patterns`, never `re`.
MATCH_EXPRESSION = "regexp_matches(coalesce(value, ''), pattern, 'i')"


@dataclass(frozen=True)
class GroupRule:
    """One pattern: products whose `match_on` field matches `pattern` belong to `product_group`."""

    product_group: str
    match_on: str
    pattern: str


def validate_group_name(name: object) -> str:
    """Group names become column names in the wide profile, so they are restricted identifiers."""
    if not isinstance(name, str) or not GROUP_NAME.match(name):
        raise ConfigError(
            f"product group name {name!r} is not allowed: use 1-40 characters of lowercase "
            "letters, digits and underscores, starting with a letter (e.g. 'candles_and_lights')"
        )
    return name


def parse_group_rules(config: Mapping[str, object]) -> list[GroupRule]:
    """Validate a parsed YAML mapping `{product_groups: {name: {field: [patterns]}}}`."""
    groups = config.get("product_groups") if isinstance(config, Mapping) else None
    if not isinstance(groups, Mapping):
        raise ConfigError("product group config must have a top-level mapping `product_groups:`")
    rules: list[GroupRule] = []
    for name, spec in groups.items():
        validate_group_name(name)
        if name == ANY_GROUP:
            raise ConfigError("`any` is built in (every product); remove it from the config")
        if not isinstance(spec, Mapping) or not spec:
            raise ConfigError(
                f"product group {name!r}: give at least one of {', '.join(MATCH_FIELDS)} "
                "with a list of patterns"
            )
        for field, patterns in spec.items():
            if field not in MATCH_FIELDS:
                raise ConfigError(
                    f"product group {name!r}: unknown field {field!r}; "
                    f"rules match on {', '.join(MATCH_FIELDS)}"
                )
            if isinstance(patterns, str):
                patterns = [patterns]
            if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
                raise ConfigError(f"product group {name!r}: {field} must be a list of strings")
            for pattern in patterns:
                if not pattern:
                    raise ConfigError(f"product group {name!r}: empty pattern in {field}")
                problem = pattern_error(pattern)
                if problem is not None:
                    raise ConfigError(
                        f"product group {name!r}: pattern {pattern!r} is not a valid regular "
                        f"expression (RE2 syntax, as DuckDB's regexp_matches: {problem})"
                    )
                rules.append(GroupRule(name, field, pattern))
    return rules


def pattern_error(pattern: str) -> str | None:
    """DuckDB's message when `pattern` is not a valid RE2 expression, else None."""
    try:
        match_patterns([""], [pattern])
    except duckdb.Error as exc:
        return str(exc).splitlines()[0]
    return None


def match_patterns(values: Sequence[str | None], patterns: Sequence[str]) -> np.ndarray:
    """Whether each value matches each pattern, by `MATCH_EXPRESSION` evaluated in DuckDB.

    Returns a boolean array of shape (len(values), len(patterns)). Raises `duckdb.Error` for a
    pattern RE2 rejects.
    """
    out = np.zeros((len(values), len(patterns)), dtype=bool)
    if not len(values) or not len(patterns):
        return out
    value_table = pa.table(
        {"i": pa.array(range(len(values)), pa.int64()), "value": pa.array(values, pa.string())}
    )
    pattern_table = pa.table(
        {
            "j": pa.array(range(len(patterns)), pa.int64()),
            "pattern": pa.array(patterns, pa.string()),
        }
    )
    con = duckdb.connect()
    try:
        con.register("match_values", value_table)
        con.register("match_patterns", pattern_table)
        hits = con.execute(
            f"select i, j from match_values cross join match_patterns where {MATCH_EXPRESSION}"
        ).fetchnumpy()
    finally:
        con.close()
    out[hits["i"].astype(np.int64), hits["j"].astype(np.int64)] = True
    return out


def read_group_rules(path: Path | str) -> list[GroupRule]:
    """Read and validate a product-group YAML file."""
    return parse_group_rules(read_yaml_file(path, what="product group config") or {})


def rules_to_arrow(rules: list[GroupRule]) -> pa.Table:
    return pa.table(
        {
            "product_group": pa.array([r.product_group for r in rules], pa.string()),
            "match_on": pa.array([r.match_on for r in rules], pa.string()),
            "pattern": pa.array([r.pattern for r in rules], pa.string()),
        }
    )


def write_group_rules(con, rules: list[GroupRule]) -> int:
    """Replace `raw.product_group_rules` with `rules` (atomically)."""
    from models_py.ingest._raw import write_raw_tables

    return write_raw_tables(con, {"product_group_rules": rules_to_arrow(rules)})[
        "product_group_rules"
    ]
