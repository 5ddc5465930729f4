"""benchmarks/uplift_hillstrom.py in quick mode on the real Hillstrom file (one split, the two
visit settings, the fast methods: about 10 s): both families are scored on the same rows, the
e-mail's visit uplift is found, and docs/benchmarks.md is left alone."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO_ROOT, shared_file

pytestmark = pytest.mark.realdata

sys.path.insert(0, str(REPO_ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def bench_module():
    pytest.importorskip(
        "sklift", reason="scikit-uplift is not installed (the benchmark's baseline; dev extra)"
    )
    import uplift_hillstrom

    return uplift_hillstrom


def test_quick_mode_scores_both_families_on_the_same_split(bench_module):
    path = shared_file("hillstrom.parquet")
    bench = bench_module.run_benchmark(
        path, settings=bench_module.SETTINGS[:2], seeds=[0], quick=True
    )
    assert bench.rows == 64_000
    results = bench.results
    assert set(results.family) == {"project", "scikit-uplift"}
    assert set(zip(results.arm, results.outcome, strict=True)) == {
        ("womens_email", "visit"),
        ("mens_email", "visit"),
    }
    assert np.isfinite(results.qini).all() and np.isfinite(results.uplift_at_30).all()
    # every method saw the same held-out rows: the observed uplift is one number per setting
    assert (results.groupby("arm").observed_uplift.nunique() == 1).all()
    womens = results[results.arm == "womens_email"]
    # the e-mail raises the visit rate by about 4.5 points (15.14 % vs 10.62 %), more among
    # the customers the models rank first
    assert womens.observed_uplift.iloc[0] == pytest.approx(0.045, abs=0.01)
    best = womens[womens.family == "project"].qini.max()
    assert best > 0.03
    assert womens[womens.family == "project"].uplift_at_30.max() > 0.055
    # the logistic T-learner is scikit-uplift's TwoModels on the same base: same scores
    by_method = womens.set_index("method").qini
    assert by_method["T-learner, logistic"] == pytest.approx(
        by_method["TwoModels, logistic"], abs=1e-6
    )


def test_quick_cli_prints_the_section_and_writes_no_docs(bench_module, capsys, tmp_path):
    path = shared_file("hillstrom.parquet")
    doc = Path(bench_module.ROOT) / "docs" / "benchmarks.md"
    before = doc.read_text()
    assert bench_module.main(["--quick", "--data", str(path), "--lock", str(tmp_path / "l")]) == 0
    out = capsys.readouterr().out
    assert "## Uplift: Hillstrom" in out and "| womens_email | visit |" in out
    assert doc.read_text() == before


def test_missing_file_is_reported(bench_module, capsys, tmp_path):
    assert bench_module.main(["--quick", "--data", str(tmp_path / "absent.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err
