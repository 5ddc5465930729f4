"""Fixtures of the scoring tests (helpers live in scoring_fixtures.py)."""

from __future__ import annotations

import pytest

import scoring._cache
from tests.scoring.scoring_fixtures import FEATURES, TinyModel, make_model


@pytest.fixture(autouse=True)
def _fresh_cache():
    """Each test starts and ends with no cached session or loaded model."""
    scoring._cache.clear()
    yield
    scoring._cache.clear()


@pytest.fixture(scope="session")
def hgb_model() -> TinyModel:
    return make_model("any_hgb_v1", product_group="any", kind="hgb", seed=1)


@pytest.fixture(scope="session")
def lr_model() -> TinyModel:
    return make_model(
        "wine_lr_v1", product_group="wine", kind="lr", seed=2, feature_names=FEATURES[::-1]
    )
