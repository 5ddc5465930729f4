"""The feature catalogue (models/features/_features__models.yml) is the one home of the feature
columns: the training and scoring marts list exactly its features, docs/features.md's tables are
generated from it, and a column without its catalogue entry is refused with a named error."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from models_py.catalogue import catalogue_path, load_catalogue, render_docs, windows
from models_py.uplift._train import NOT_FEATURES

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_KEYS = {
    "fct_training_examples": [
        "customer_id",
        "product_group",
        "as_of_date",
        "split",
        "label",
        "sample_weight",
    ],
    "fct_scoring_features": ["customer_id", "product_group", "as_of_date"],
    # the keys, arm, outcomes and money that uplift training never uses as features
    "fct_experiment_examples": list(NOT_FEATURES),
}


@pytest.fixture(scope="module")
def catalogue():
    return load_catalogue()


def test_catalogue_lists_every_feature_once_with_family_window_and_fill(catalogue):
    names = [f.name for f in catalogue]
    assert len(names) == len(set(names)) == 63
    assert {f.family for f in catalogue} == {
        "customer",
        "orders",
        "products",
        "rfm",
        "btyd",
        "email",
        "group",
    }
    assert windows(catalogue, "orders") == (7, 30, 90, 180, 365)
    assert windows(catalogue, "email") == (30, 90)
    assert windows(catalogue, "group") == (90, 365)
    by_name = {f.name: f for f in catalogue}
    assert by_name["spend_90d"].window_days == 90
    assert by_name["group_days_since_last_order"].fill.startswith("3650")
    assert by_name["btyd_frequency"].family == "btyd"


@pytest.mark.parametrize("model", list(EXAMPLE_KEYS))
def test_example_marts_have_exactly_the_catalogue_features_in_order(catalogue, model):
    models = {m["name"]: m for m in yaml.safe_load(catalogue_path().read_text())["models"]}
    columns = [(c["name"], c["data_type"]) for c in models[model]["columns"]]
    features = [(f.name, f.data_type) for f in catalogue]
    assert [name for name, _ in columns[: len(EXAMPLE_KEYS[model])]] == EXAMPLE_KEYS[model]
    assert columns[len(EXAMPLE_KEYS[model]) :] == features


def test_docs_tables_are_generated_from_the_catalogue(catalogue):
    docs = (ROOT / "docs" / "features.md").read_text()
    assert docs.count("<!-- catalogue: ") == 2
    assert render_docs(docs, catalogue) == docs, (
        "docs/features.md's feature tables differ from the catalogue: run "
        "`python -m models_py.catalogue --write-docs docs/features.md`"
    )
    # The check can fail: a catalogue description that changes changes the table.
    changed = tuple(
        f if f.name != "spend_7d" else type(f)(**{**f.__dict__, "description": "changed"})
        for f in catalogue
    )
    assert render_docs(docs, changed) != docs


def test_a_feature_without_catalogue_metadata_is_refused(tmp_path):
    document = yaml.safe_load(catalogue_path().read_text())
    model = next(m for m in document["models"] if m["name"] == "fct_customer_group_features")
    column = next(c for c in model["columns"] if c["name"] == "group_spend_90d")
    del column["config"]["meta"]["fill"]
    path = tmp_path / "_features__models.yml"
    path.write_text(yaml.safe_dump(document))
    with pytest.raises(ValueError, match=r"group_spend_90d of fct_customer_group_features .* fill"):
        load_catalogue(path)
