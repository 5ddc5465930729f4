"""The label-stratified training sample (`max_positive_share`): which rows are read, and that
the sampling weights restore the population the model is meant for."""

from __future__ import annotations

from contextlib import closing

import numpy as np
import pytest

from models_py._warehouse import connect
from models_py.training._candidates import build_estimator, fit_estimator
from models_py.training._examples import load_examples
from models_py.training._train import plan_training
from tests.models_py.training.training_fixtures import (
    CUTOFFS,
    copy_warehouse,
    hgb_spec,
    template_warehouse,
)

TRAIN_CUTOFFS = CUTOFFS[:-2]  # the fake warehouse: the last two cutoffs validate and test
QUOTA = 300  # train rows per cutoff: max_training_rows / train cutoffs


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    work = tmp_path_factory.mktemp("sampling")
    return copy_warehouse(template_warehouse(tmp_path_factory), work / "wh.duckdb"), work


def _examples(warehouse, group: str, **fields):
    settings, work = warehouse
    spec = work / f"spec_{len(fields)}_{group}.yml"
    spec.write_text(
        hgb_spec(max_training_rows=QUOTA * len(TRAIN_CUTOFFS), max_evaluation_rows=1000, **fields)
    )
    (target,) = plan_training(settings, spec_path=spec, groups=[group])
    with closing(connect(settings.warehouse, read_only=True)) as con:
        return load_examples(con, target)


def _population(warehouse, group: str, split: str = "train"):
    """Per cutoff: (rows, positives) in the table."""
    settings, _ = warehouse
    with closing(connect(settings.warehouse, read_only=True)) as con:
        rows = con.execute(
            "select as_of_date, count(*), sum(label) from marts.fct_training_examples "
            "where product_group = ? and split = ? group by 1 order by 1",
            [group, split],
        ).fetchall()
    return {np.datetime64(d, "D"): (int(n), int(p)) for d, n, p in rows}


@pytest.mark.parametrize("group", ["any", "wine"])
def test_each_train_cutoff_keeps_its_positives_and_weights_restore_its_rate(warehouse, group):
    ex = _examples(warehouse, group, max_positive_share=0.5)
    population = _population(warehouse, group)
    train = ex.split == "train"
    assert ex.weight is not None and len(population) == len(TRAIN_CUTOFFS)
    for cutoff, (n, n_pos) in population.items():
        rows = train & (ex.cutoff == cutoff)
        y, w = ex.y[rows], ex.weight[rows]
        positives = int(y.sum())
        # every positive up to half the quota (more when negatives run short), negatives fill
        assert positives == min(n_pos, max(QUOTA // 2, QUOTA - (n - n_pos)))
        assert rows.sum() == min(QUOTA, n)
        # the weighted label rate is the cutoff's rate in the table; weights sum to the rows
        assert np.average(y, weights=w) == pytest.approx(n_pos / n, abs=1e-12)
        assert w.sum() == pytest.approx(rows.sum())
    # the sample over-represents positives (that is the point), the weights undo it
    assert ex.y[train].mean() > sum(p for _, p in population.values()) / sum(
        n for n, _ in population.values()
    )
    # validation and test rows: a uniform sample, every weight 1
    for split in ("validation", "test"):
        assert ex.weights(split) is None
        assert np.all(ex.weight[ex.split == split] == 1.0)
        ((n, _),) = _population(warehouse, group, split).values()
        assert (ex.split == split).sum() == min(1000, n)


def test_the_sample_is_deterministic_and_off_by_default(warehouse):
    first = _examples(warehouse, "wine", max_positive_share=0.5)
    again = _examples(warehouse, "wine", max_positive_share=0.5)
    assert np.array_equal(first.X, again.X) and np.array_equal(first.weight, again.weight)
    uniform = _examples(warehouse, "wine")
    assert uniform.weight is None and uniform.weights("train") is None
    # the uniform sample keeps the table's label rate only on average: fewer positives
    assert uniform.y[uniform.split == "train"].sum() < first.y[first.split == "train"].sum()


def test_a_model_fitted_with_the_weights_predicts_the_population_rate(warehouse):
    """Fitted on the positive-rich sample, a logistic regression predicts the population's rate
    with the weights and overshoots it without them."""
    settings, _ = warehouse
    ex = _examples(warehouse, "wine", max_positive_share=0.5)
    X, y, _ = ex.part("train")
    with closing(connect(settings.warehouse, read_only=True)) as con:
        cols = ", ".join(f'"{f}"' for f in ex.feature_names)
        everyone = np.asarray(
            con.execute(
                f"select {cols} from marts.fct_training_examples "
                "where product_group = 'wine' and split = 'train'"
            ).fetchall(),
            dtype=np.float32,
        )
        rate = con.execute(
            "select avg(label) from marts.fct_training_examples "
            "where product_group = 'wine' and split = 'train'"
        ).fetchone()[0]
    cat = [ex.feature_names.index("rfm_segment_code")]

    def mean_prediction(weights):
        # unweighted classes (the package default balances them, which no weight survives)
        params = {"class_weight": None}
        est = build_estimator(
            "logistic_regression", params, n_features=X.shape[1], categorical_idx=cat
        )
        fit_estimator(est, X, y, weights)
        return est.predict_proba(everyone)[:, 1].mean()

    assert mean_prediction(ex.weights("train")) == pytest.approx(rate, abs=0.01)
    assert mean_prediction(None) > rate + 0.05


def test_histogram_gradient_boosting_fits_unweighted_the_others_weighted(warehouse):
    """HGB ignores the sampling weights (scikit-learn's weighted binning is several times
    slower, docs/training.md); the logistic regression's fit changes with them."""
    ex = _examples(warehouse, "wine", max_positive_share=0.5)
    X, y, _ = ex.part("train")
    w = ex.weights("train")
    cat = [ex.feature_names.index("rfm_segment_code")]

    def predictions(algorithm, params, weights):
        est = build_estimator(algorithm, params, n_features=X.shape[1], categorical_idx=cat)
        return fit_estimator(est, X, y, weights).predict_proba(X)[:, 1]

    hgb = {"max_iter": 20, "early_stopping": False}
    assert np.array_equal(
        predictions("hist_gradient_boosting", hgb, w),
        predictions("hist_gradient_boosting", hgb, None),
    )
    lr = {"class_weight": None}
    assert not np.allclose(
        predictions("logistic_regression", lr, w), predictions("logistic_regression", lr, None)
    )


SAMPLED_IN_SQL = """
    create or replace table marts.sampled_examples as
    with sampled as (
        select *
        from marts.fct_training_examples
        where
            (split = 'train' and (label = 1 or hash(customer_id, as_of_date) % 3 = 0))
            or (split <> 'train' and hash(customer_id, as_of_date) % 2 = 0)
    ),
    population as (
        select product_group, as_of_date, split, case when split = 'train' then label end as s,
            count(*) as n
        from marts.fct_training_examples group by all
    )
    select sampled.* exclude (sample_weight), population.n / count(*) over (
        partition by sampled.product_group, sampled.as_of_date, sampled.split,
            case when sampled.split = 'train' then sampled.label end
    ) as sample_weight
    from sampled
    inner join population
        on sampled.product_group = population.product_group
        and sampled.as_of_date = population.as_of_date
        and sampled.split = population.split
        and population.s is not distinct from
            case when sampled.split = 'train' then sampled.label end
"""


@pytest.mark.parametrize("share", [None, 0.5])
def test_a_table_sampled_in_sql_is_weighted_back_to_its_population(warehouse, share):
    """A training table sampled by label in SQL (as marts.fct_training_examples is) declares its
    weights with `weight`: the train rows Python reads on top of it get back each cutoff's label
    rate in the full table, with or without a stratified quota; evaluation rows stay uniform."""
    settings, _ = warehouse
    with closing(connect(settings.warehouse)) as con:
        con.execute(SAMPLED_IN_SQL)
    fields = {"relation": "marts.sampled_examples", "weight": "sample_weight"}
    ex = _examples(warehouse, "wine", max_positive_share=share, **fields)
    population = _population(warehouse, "wine")
    train = ex.split == "train"
    for cutoff, (n, n_pos) in population.items():
        rows = train & (ex.cutoff == cutoff)
        y, w = ex.y[rows], ex.weight[rows]
        assert np.average(y, weights=w) == pytest.approx(n_pos / n, abs=1e-12)
        assert w.sum() == pytest.approx(rows.sum())
    # the sample holds every positive and a third of the negatives: unweighted, far too many
    assert ex.y[train].mean() > 1.5 * sum(p for _, p in population.values()) / sum(
        n for n, _ in population.values()
    )
    for split in ("validation", "test"):
        assert ex.weights(split) is None


def test_weights_that_vary_within_an_evaluation_cutoff_are_refused(warehouse):
    from models_py._errors import InputDataError

    settings, _ = warehouse
    with closing(connect(settings.warehouse)) as con:
        con.execute(SAMPLED_IN_SQL)
        con.execute(
            "update marts.sampled_examples set sample_weight = sample_weight * (1 + label) "
            "where split = 'test'"
        )
    with pytest.raises(InputDataError, match=r"varies .* within the test cutoff"):
        _examples(warehouse, "wine", relation="marts.sampled_examples", weight="sample_weight")
