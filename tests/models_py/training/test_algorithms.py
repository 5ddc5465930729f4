"""One table of candidate algorithms: spec validation, tree checks and model ids agree with it."""

from __future__ import annotations

import re

import pytest

from models_py._errors import ConfigError
from models_py.training._algorithms import ALGORITHM_NAMES, ALGORITHMS, TREE_ALGORITHMS, short_name
from models_py.training._candidates import available_algorithms
from models_py.training._specs import DEFAULT_SPEC_PATH, load_specs, parse_spec


def test_the_table_holds_each_algorithm_once_with_a_distinct_short_name() -> None:
    assert ALGORITHM_NAMES == (
        "logistic_regression",
        "random_forest",
        "hist_gradient_boosting",
        "lightgbm",
    )
    assert [short_name(a) for a in ALGORITHM_NAMES] == ["lr", "rf", "hgb", "lgbm"]
    assert TREE_ALGORITHMS == ("random_forest", "hist_gradient_boosting", "lightgbm")
    shorts = [a.short for a in ALGORITHMS.values()]
    assert len(set(shorts)) == len(shorts)
    # model ids are `<group>-<short>-<UTC time>-<suffix>`: a short name never holds a dash
    assert all(re.fullmatch(r"[a-z]+", s) for s in shorts)


@pytest.mark.parametrize("algorithm", ALGORITHM_NAMES)
def test_every_listed_algorithm_is_accepted_by_a_spec(algorithm: str) -> None:
    (spec,) = load_specs(DEFAULT_SPEC_PATH)
    raw = {
        "name": "one",
        "relation": spec.relation,
        "id_columns": list(spec.id_columns),
        "label": spec.label,
        "cutoff": spec.cutoff,
        "candidates": {algorithm: {}},
    }
    assert list(parse_spec(raw).candidates) == [algorithm]
    assert set(available_algorithms([algorithm])) <= {algorithm}


def test_an_algorithm_missing_from_the_table_is_refused() -> None:
    raw = {
        "name": "one",
        "relation": "marts.t",
        "id_columns": ["customer_id"],
        "label": "label",
        "cutoff": "as_of_date",
        "candidates": {"xgboost": {}},
    }
    with pytest.raises(ConfigError, match="choose from logistic_regression, random_forest"):
        parse_spec(raw)
