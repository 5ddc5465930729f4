"""Model specs: the packaged spec loads; bad specs and specs that do not match the warehouse get a
ConfigError naming the problem."""

from __future__ import annotations

import copy

import pytest
import yaml

from models_py._errors import ConfigError
from models_py._warehouse import connect
from models_py.training._specs import (
    DEFAULT_SPEC_PATH,
    load_specs,
    parse_spec,
    parse_specs,
    resolve_spec,
)

BASE = yaml.safe_load(DEFAULT_SPEC_PATH.read_text())["specs"][0]


def spec_with(**changes):
    raw = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            raw.pop(key, None)
        else:
            raw[key] = value
    return raw


def test_default_spec_loads():
    (spec,) = load_specs()
    assert spec.relation == "marts.fct_training_examples"
    assert spec.groups == "all_active"
    assert spec.categorical == ("rfm_segment_code",)
    assert set(spec.candidates) == {
        "logistic_regression",
        "hist_gradient_boosting",
        "lightgbm",
    }
    assert spec.threshold.kind == "max_f1"
    assert spec.promotion_margin == 0.005
    assert spec.key_columns == (
        "customer_id",
        "label",
        "as_of_date",
        "split",
        "sample_weight",
        "product_group",
    )
    assert spec.weight == "sample_weight"


def test_threshold_precision_at():
    spec = parse_spec(spec_with(threshold={"precision_at": 0.5}))
    assert (spec.threshold.kind, spec.threshold.value) == ("precision_at", 0.5)
    assert spec.threshold.describe() == "precision_at:0.5"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"calibration": "isotonic"}, "isotonic is refused"),
        (
            {"candidates": {"hist_gradient_boosting": {"categorical_features": [[4]]}}},
            "categorical_features is refused",
        ),
        ({"candidates": {"xgboost": {}}}, "unknown algorithm 'xgboost'"),
        ({"candidates": {"random_forest": {"n_trees": [10]}}}, "'n_trees' is not a hyperparameter"),
        ({"candidates": {"random_forest": {"max_depth": [-3]}}}, "invalid random_forest"),
        ({"candidates": {}}, "candidates must map"),
        ({"relation": "fct_training_examples"}, "relation must be 'schema.table'"),
        ({"label": None}, "label"),
        ({"id_columns": None}, "id_columns is required"),
        ({"colour": "red"}, "unknown field"),
        ({"threshold": {"precision_at": 1.5}}, "precision_at must be in"),
        ({"threshold": "youden"}, "threshold must be"),
        ({"validation": "random"}, "validation must be one of"),
        (
            {"validation": "stratified_kfold"},
            "cutoff, split, max_positive_share, weight belong to validation: temporal",
        ),
        ({"cutoff": None}, "cutoff"),
        ({"promotion": {"metric": "accuracy"}}, "promotion metric"),
        ({"features": ["order_count", "label"]}, "must not include key columns"),
        ({"features": ["order_count"], "categorical": ["rfm_segment_code"]}, "not in the features"),
        ({"name": "Bad Name"}, "is not allowed"),
        ({"max_training_rows": 10}, "max_training_rows must be an integer >= 100"),
        ({"max_positive_share": 1.0}, "max_positive_share must be a number between 0 and 1"),
    ],
)
def test_bad_spec_is_named(changes, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("'", "'")):
        parse_spec(spec_with(**changes))


def test_spec_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_specs(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("specs: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_specs(bad)
    with pytest.raises(ConfigError, match="used twice"):
        parse_specs({"specs": [BASE, BASE]})
    with pytest.raises(ConfigError, match="`specs:`"):
        parse_specs({"models": []})


@pytest.fixture
def con(tmp_path):
    c = connect(tmp_path / "specs.duckdb")
    c.execute("create schema marts")
    c.execute(
        "create table marts.fct_training_examples as select * from (values "
        "(1::bigint, 'wine', date '2024-01-01', 'train', 1, 1.0, 3::bigint, 2.5::double, 1, 'x'), "
        "(2::bigint, 'beer', date '2024-01-01', 'train', 0, 4.0, 1::bigint, 0.5::double, 2, 'y')) "
        "as t(customer_id, product_group, as_of_date, split, label, sample_weight, order_count, "
        "spend_total, rfm_segment_code, country)"
    )
    c.execute(
        "create table marts.dim_product_groups as select * from (values "
        "('wine', 3::bigint, true), ('beer', 2::bigint, true), ('tea', 0::bigint, false), "
        "('any', 9::bigint, true)) as t(product_group, product_count, is_active)"
    )
    yield c
    c.close()


def test_resolve_expands_active_groups_and_numeric_features(con):
    spec = parse_spec(spec_with())
    targets = resolve_spec(con, spec)
    # `any` is active but has no examples: skipped with a warning; `tea` is inactive.
    assert [t.product_group for t in targets] == ["beer", "wine"]
    assert targets[0].feature_names == ("order_count", "spend_total", "rfm_segment_code")
    assert not targets[0].oracle_available  # raw.oracle_propensity does not exist here
    (only,) = resolve_spec(con, spec, only_groups=["wine"])
    assert only.group_value == "wine"
    explicit = parse_spec(spec_with(group={"column": "product_group", "groups": ["wine"]}))
    assert [t.product_group for t in resolve_spec(con, explicit)] == ["wine"]
    ungrouped = parse_spec(spec_with(group=None, name="churn"))
    (target,) = resolve_spec(con, ungrouped)
    assert (target.product_group, target.group_value) == ("churn", None)
    assert "product_group" not in target.feature_names


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"relation": "marts.nope"}, "training relation marts.nope does not exist"),
        ({"label": "converted"}, "label column 'converted' is not a column"),
        ({"features": ["order_count", "spend_90d"], "categorical": []}, "feature 'spend_90d'"),
        ({"features": ["order_count", "country"], "categorical": []}, r"country \(VARCHAR\)"),
        ({"group": {"column": "product_group", "groups": ["wine", "cheese"]}}, "cheese"),
        ({"group": {"column": "segment"}}, "group column 'segment'"),
        ({"split": "fold"}, "split column 'fold'"),
    ],
)
def test_resolve_names_what_is_missing(con, changes, message):
    spec = parse_spec(spec_with(**changes))
    with pytest.raises(ConfigError, match=message):
        resolve_spec(con, spec)


def test_resolve_unknown_group_filter(con):
    with pytest.raises(ConfigError, match="--group cheese"):
        resolve_spec(con, parse_spec(spec_with()), only_groups=["cheese"])


def test_a_sampled_table_needs_its_weight_declared(con):
    """sample_weight differs by label (positives are sampled at another rate): fitted as a
    feature it would give the label away, so a spec reading it as one is refused."""
    spec = parse_spec(spec_with(weight=None))
    with pytest.raises(ConfigError, match="declare `weight: sample_weight`"):
        resolve_spec(con, spec)
    con.execute("alter table marts.fct_training_examples alter sample_weight type varchar")
    with pytest.raises(ConfigError, match="weight column 'sample_weight' is not numeric"):
        resolve_spec(con, parse_spec(spec_with()))


def test_observable_oracle_column_is_used_when_present_and_warned_about_when_absent(con, caplog):
    oracle = {
        "relation": "raw.oracle_propensity",
        "probability": "probability",
        "observable_probability": "observable_probability",
    }
    spec = parse_spec(spec_with(oracle=oracle))
    assert spec.oracle.observable_probability == "observable_probability"
    con.execute("create schema raw")
    con.execute(
        "create table raw.oracle_propensity (customer_id bigint, product_group varchar, "
        "as_of_date date, probability double)"
    )
    with caplog.at_level("WARNING", logger="models_py"):
        (target, *_) = resolve_spec(con, spec)
    assert target.oracle_available and not target.observable_oracle_available
    assert "has no column observable_probability" in caplog.text
    con.execute("alter table raw.oracle_propensity add column observable_probability double")
    (target, *_) = resolve_spec(con, spec)
    assert target.oracle_available and target.observable_oracle_available
    with pytest.raises(ConfigError, match="observable_probability must be a column name"):
        parse_spec(spec_with(oracle={**oracle, "observable_probability": 3}))
