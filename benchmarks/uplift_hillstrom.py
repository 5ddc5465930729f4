"""Uplift on the Hillstrom e-mail experiment: the project's learners (models_py.uplift) against
scikit-uplift's TwoModels, SoloModel and ClassTransformation, on the same splits and bases.

Usage::

    .venv/bin/python benchmarks/uplift_hillstrom.py                  # 5 splits, 4 settings
    .venv/bin/python benchmarks/uplift_hillstrom.py --quick          # 1 split, visit only
    .venv/bin/python benchmarks/uplift_hillstrom.py --data PATH --no-write

Reads the MineThatData file (CSV or parquet; default ../shared/data/hillstrom.parquet beside the
repository) with the project's loader into a temporary DuckDB warehouse and takes
``datasets.hillstrom``: the pre-treatment covariates as features (not the arm indicators). For
each setting (treated arm vs ``no_email``, outcome ``visit`` or ``conversion``) and each seed,
the rows of the two arms are split 70/30 stratified by arm x outcome
(`models_py.uplift.stratified_split`); every method is fitted on the 70 % and scored on the
30 % with the same metric code (`models_py.uplift.evaluate_scores`). Results go to the
``uplift_hillstrom`` section of docs/benchmarks.md (not in --quick mode, nor with --no-write).
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import add_lock_argument, bench_lock, machine, write_section  # noqa: E402

DEFAULT_DATA = ROOT.parent / "shared" / "data" / "hillstrom.parquet"
CONTROL = "no_email"
SETTINGS = (
    ("womens_email", "visit"),
    ("mens_email", "visit"),
    ("womens_email", "conversion"),
    ("mens_email", "conversion"),
)
TEST_SHARE = 0.3
GOAL = "the project's best Qini coefficient >= the best of scikit-uplift's, per setting"

#: A method fits on (X, treated 0/1, y) of the training rows and returns uplift scores for X_test.
Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Method:
    name: str
    family: str  # "project" or "scikit-uplift"
    score: Scorer
    quick: bool = False  # part of --quick


# --------------------------------------------------------------------------------- data


def load_experiment(path: Path) -> tuple[pd.DataFrame, list[str]]:
    """``datasets.hillstrom`` as the project's loader writes it, and its covariate columns."""
    import duckdb

    from models_py.ingest.loaders import load_hillstrom
    from models_py.ingest.loaders._hillstrom import FEATURES

    covariates = [f for f in FEATURES if f not in ("is_mens_email", "is_womens_email")]
    with tempfile.TemporaryDirectory(prefix="uplift-hillstrom-") as tmp:
        warehouse = Path(tmp) / "hillstrom.duckdb"
        load_hillstrom(path, warehouse)
        con = duckdb.connect(str(warehouse), read_only=True)
        try:
            frame = con.execute("select * from datasets.hillstrom order by customer_id").df()
        finally:
            con.close()
    return frame, covariates


# --------------------------------------------------------------------------------- methods


def _project(fit, **options) -> Scorer:
    """A project learner on arms "treated"/"control"; the score is its CATE."""

    def score(X, t, y, X_test):
        arm = np.where(t == 1, "treated", "control")
        model_set = fit(X, arm, y, control_arm="control", **options)
        return model_set.predict(X_test)["cate__treated"]

    return score


def _sklift(make) -> Scorer:
    def score(X, t, y, X_test):
        with warnings.catch_warnings():  # sklift calls helpers scikit-learn deprecates
            warnings.simplefilter("ignore", FutureWarning)
            return np.asarray(make().fit(X, y, t).predict(X_test), dtype=np.float64)

    return score


def project_methods() -> list[Method]:
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from models_py.uplift import fit_dr_learner, fit_s_learner, fit_t_learner

    ridge = make_pipeline(StandardScaler(), Ridge(alpha=1.0))
    return [
        Method("T-learner, logistic", "project", _project(fit_t_learner, base="linear"), True),
        Method("T-learner, HGB", "project", _project(fit_t_learner, base="hgb"), True),
        Method("S-learner, logistic", "project", _project(fit_s_learner), True),
        Method(
            "DR-learner, logistic + ridge", "project", _project(fit_dr_learner, base="linear"), True
        ),
        Method("DR-learner, HGB", "project", _project(fit_dr_learner, base="hgb")),
        Method(
            "DR-learner, HGB outcomes + ridge",
            "project",
            _project(fit_dr_learner, base="hgb", effect_estimator=ridge),
        ),
    ]


def sklift_methods() -> list[Method]:
    """TwoModels, SoloModel and ClassTransformation on the project's two default bases."""
    from sklift.models import ClassTransformation, SoloModel, TwoModels

    from models_py.uplift import default_estimator

    def base(kind):
        return lambda: default_estimator(kind, "classifier")

    methods = []
    for label, kind in (("logistic", "linear"), ("HGB", "hgb")):
        make = base(kind)
        quick = kind == "linear"
        methods += [
            Method(
                f"TwoModels, {label}",
                "scikit-uplift",
                _sklift(lambda m=make: TwoModels(m(), m(), method="vanilla")),
                quick,
            ),
            Method(
                f"SoloModel, {label}",
                "scikit-uplift",
                _sklift(lambda m=make: SoloModel(m())),
                quick,
            ),
            Method(
                f"ClassTransformation, {label}",
                "scikit-uplift",
                _sklift(lambda m=make: ClassTransformation(m())),
                quick,
            ),
        ]
    return methods


# --------------------------------------------------------------------------------- runs


def run_setting(
    frame: pd.DataFrame,
    covariates: list[str],
    arm: str,
    outcome: str,
    *,
    seeds: list[int],
    methods: list[Method],
) -> list[dict]:
    """One row per (method, seed): Qini coefficient, AUUC, uplift at 10/20/30 %, seconds."""
    from models_py.uplift import evaluate_scores, stratified_split

    rows = frame[frame["arm"].isin([arm, CONTROL])]
    X = rows[covariates].to_numpy(np.float32)
    t = (rows["arm"] == arm).to_numpy().astype(int)
    y = rows[outcome].to_numpy()
    results = []
    for seed in seeds:
        train, test = stratified_split(rows["arm"].to_numpy(), y, test_share=TEST_SHARE, seed=seed)
        for method in methods:
            started = time.perf_counter()
            score = method.score(X[train], t[train], y[train], X[test])
            seconds = time.perf_counter() - started
            evaluation = evaluate_scores(
                {"treated": score},
                np.where(t[test] == 1, "treated", "control"),
                y[test],
                control_arm="control",
            ).arms["treated"]
            results.append(
                {
                    "arm": arm,
                    "outcome": outcome,
                    "method": method.name,
                    "family": method.family,
                    "seed": seed,
                    "qini": evaluation.qini,
                    "auuc": evaluation.auuc,
                    **{f"uplift_at_{round(k * 100)}": v for k, v in evaluation.uplift_at.items()},
                    "observed_uplift": evaluation.observed_uplift,
                    "seconds": seconds,
                }
            )
            print(
                f"  {arm}/{outcome} seed {seed} {method.name:<36} qini {evaluation.qini:7.4f} "
                f"uplift@30 {evaluation.uplift_at[0.3]:7.4f} ({seconds:.1f} s)",
                flush=True,
            )
    return results


def summarise(results: pd.DataFrame) -> pd.DataFrame:
    """Mean and sd over seeds per setting and method."""
    grouped = results.groupby(["arm", "outcome", "family", "method"], sort=False)
    return grouped.agg(
        qini_mean=("qini", "mean"),
        qini_sd=("qini", "std"),
        uplift30_mean=("uplift_at_30", "mean"),
        uplift30_sd=("uplift_at_30", "std"),
        auuc_mean=("auuc", "mean"),
        seconds=("seconds", "mean"),
        splits=("seed", "count"),
    ).reset_index()


#: Family -> the key of its columns in `headline`.
FAMILIES = {"project": "project", "scikit-uplift": "sklift"}


def headline(summary: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """Per setting: the best method of each family by mean Qini coefficient, and the paired
    difference of their Qini coefficients over the same splits (project minus sklift)."""
    rows = []
    for (arm, outcome), part in summary.groupby(["arm", "outcome"], sort=False):
        row = {"arm": arm, "outcome": outcome}
        for family, key in FAMILIES.items():
            best = part[part.family == family].sort_values("qini_mean").iloc[-1]
            row[f"{key}_best"] = best["method"]
            row[f"{key}_qini"] = best["qini_mean"]
            row[f"{key}_qini_sd"] = best["qini_sd"]
            row[f"{key}_uplift30"] = best["uplift30_mean"]
        setting = results[(results.arm == arm) & (results.outcome == outcome)]
        per_seed = setting.pivot_table(index="seed", columns="method", values="qini")
        difference = per_seed[row["project_best"]] - per_seed[row["sklift_best"]]
        row["difference"] = float(difference.mean())
        row["difference_sd"] = float(difference.std()) if len(difference) > 1 else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def _pm(mean: float, sd: float, *, sign: bool = False) -> str:
    mean = round(mean, 4) + 0.0  # no "-0.0000"
    value = f"{mean:+.4f}" if sign else f"{mean:.4f}"
    return f"{value} ± {sd:.4f}" if np.isfinite(sd) else value


def verdict(top: pd.DataFrame) -> str:
    """One sentence per the goal: in how many settings it is met, and by how much it is missed
    elsewhere against the split-to-split sd of the paired difference."""
    # the same model fitted by both (T-learner and TwoModels) agrees to about 1e-7 only
    missing = top.sklift_qini - top.project_qini > 1e-6
    text = f"Goal met in {int((~missing).sum())} of {len(top)} setting(s)"
    missed = [
        f"{r.arm}/{r.outcome}: {r.sklift_qini - r.project_qini:.2g} below"
        + (
            f", paired difference sd {r.difference_sd:.2g} over the splits"
            if np.isfinite(r.difference_sd)
            else ""
        )
        for r in top[missing].itertuples()
    ]
    return text + (f" (missed on {'; '.join(missed)})." if missed else ".")


def markdown(summary: pd.DataFrame, top: pd.DataFrame, *, command: str, data: str) -> str:
    splits = int(summary.splits.max())
    lines = [
        "## Uplift: Hillstrom",
        "",
        f"Goal: {GOAL}. Machine: {machine()}. Command: `{command}`. Data: {data}.",
        "",
        "Each treated arm against `no_email`, outcome `visit` or `conversion`; features: the "
        "pre-treatment covariates of `datasets.hillstrom` (recency, history, segment, "
        "mens/womens, newbie, zip code, channel). "
        f"{splits} stratified 70/30 split(s) (seeds 0..{splits - 1}, "
        "stratified by arm x outcome); every method is fitted on the 70 % and evaluated on the "
        "30 % by the same code (`models_py.uplift.evaluate_scores`). Qini coefficient as "
        "`sklift.metrics.qini_auc_score` (negative_effect=True); uplift@30 % = response rate of "
        "treated minus control among the top 30 % by score; mean ± sd over splits. "
        "scikit-uplift's models get the project's two default base classifiers "
        "(`default_estimator`: StandardScaler + LogisticRegression, and a regularised "
        "HistGradientBoostingClassifier), so the comparison is between meta-learners: "
        "the project's logistic T-learner is the same model as TwoModels on the logistic "
        "base (identical figures), and its logistic S-learner is SoloModel's model up to "
        "the scaling of the treatment column. Nothing "
        'is tuned on the test share; "best" is picked by mean test Qini for both families '
        "alike, so both bests are optimistic by the same selection.",
        "",
        "| arm | outcome | project best | Qini | uplift@30 % | scikit-uplift best | Qini | "
        "uplift@30 % | Qini difference (paired) |",
        "|---|---|---|---:|---:|---|---:|---:|---:|",
    ]
    for r in top.itertuples():
        lines.append(
            f"| {r.arm} | {r.outcome} | {r.project_best} | "
            f"{_pm(r.project_qini, r.project_qini_sd)} | {r.project_uplift30:.4f} | "
            f"{r.sklift_best} | {_pm(r.sklift_qini, r.sklift_qini_sd)} | "
            f"{r.sklift_uplift30:.4f} | {_pm(r.difference, r.difference_sd, sign=True)} |"
        )
    lines += ["", verdict(top)]
    for (arm, outcome), part in summary.groupby(["arm", "outcome"], sort=False):
        lines += [
            "",
            f"### {arm} vs {CONTROL}, {outcome}",
            "",
            "| family | method | Qini coefficient | uplift@30 % | AUUC | fit + score s |",
            "|---|---|---:|---:|---:|---:|",
        ]
        for r in part.itertuples():
            lines.append(
                f"| {r.family} | {r.method} | {_pm(r.qini_mean, r.qini_sd)} | "
                f"{_pm(r.uplift30_mean, r.uplift30_sd)} | {r.auuc_mean:.4f} | {r.seconds:.1f} |"
            )
    return "\n".join(lines) + "\n"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Benchmark:
    results: pd.DataFrame  # one row per setting, method and split
    summary: pd.DataFrame  # mean and sd per setting and method
    top: pd.DataFrame  # best of each family per setting
    rows: int  # customers in the file


def run_benchmark(
    data: Path,
    *,
    settings: tuple[tuple[str, str], ...] = SETTINGS,
    seeds: list[int] | None = None,
    quick: bool = False,
) -> Benchmark:
    """Every method on every setting and split (--quick: the methods marked quick), fitted
    single-threaded."""
    from threadpoolctl import threadpool_limits

    methods = [m for m in project_methods() + sklift_methods() if m.quick or not quick]
    with threadpool_limits(limits=1):
        frame, covariates = load_experiment(data)
        results = []
        for arm, outcome in settings:
            results += run_setting(
                frame, covariates, arm, outcome, seeds=seeds or [0], methods=methods
            )
    results = pd.DataFrame(results)
    summary = summarise(results)
    return Benchmark(results, summary, headline(summary, results), len(frame))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help="the Hillstrom file, CSV or parquet (default: ../shared/data/hillstrom.parquet "
        "beside the repository)",
    )
    parser.add_argument("--splits", type=int, default=5, help="stratified splits, seeds 0..N-1")
    parser.add_argument(
        "--setting",
        action="append",
        choices=[f"{a}:{o}" for a, o in SETTINGS],
        help="run only this arm:outcome (repeatable; default: all four)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="1 split, visit only, fast methods; no docs written"
    )
    parser.add_argument("--no-write", action="store_true", help="do not write docs/benchmarks.md")
    add_lock_argument(parser)
    args = parser.parse_args(argv)
    if not args.data.exists():
        print(
            f"{args.data} does not exist: pass --data with the Hillstrom MineThatData file",
            file=sys.stderr,
        )
        return 2
    try:
        import sklift  # noqa: F401
    except ImportError:
        print("scikit-uplift is not installed: pip install scikit-uplift", file=sys.stderr)
        return 2

    settings = SETTINGS[:2] if args.quick else SETTINGS
    if args.setting:
        settings = tuple(tuple(s.split(":")) for s in args.setting)
    seeds = [0] if args.quick else list(range(args.splits))
    with bench_lock(args.lock):
        bench = run_benchmark(args.data, settings=settings, seeds=seeds, quick=args.quick)
    command = ".venv/bin/python benchmarks/uplift_hillstrom.py"
    command += f" --splits {args.splits}" if args.splits != 5 else ""
    command += "".join(f" --setting {s}" for s in args.setting or ())
    data = f"`{args.data.name}` ({bench.rows:,} rows, sha256 {_sha256(args.data)[:12]}…)"
    body = markdown(bench.summary, bench.top, command=command, data=data)
    print(body)
    if not (args.quick or args.no_write):
        write_section("uplift_hillstrom", body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
