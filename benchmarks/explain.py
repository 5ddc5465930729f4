"""Reason codes (issue 19): top-3 agreement of the warehouse's contributions with exact SHAP, and
their cost against scoring the same rows.

    .venv/bin/python benchmarks/explain.py [--source-customers 5000] [--rows 5000]

On the small real warehouse of benchmarks/serve.py (generated, built, trained with one HGB
candidate per active group, scored by a daily run; cached under ``--workdir``), per product group:

- **agreement**: the champion's registered ONNX cannot be given to ``shap`` (it needs the fitted
  scikit-learn trees, which the registry does not keep: no pickle). So the champion's base
  estimator is refitted (same algorithm and hyperparameters, from ``ml.model_registry``, on the
  training rows of ``marts.fct_training_examples``) and exported to ONNX; on ``--rows`` rows of
  the scoring cutoff, both methods of ``fct_score_reasons`` (Saabas and exact TreeSHAP, from
  that ONNX, covers from the rows) are compared with exact path-dependent TreeSHAP of the fitted
  estimator (``shap.TreeExplainer``, log-odds, training covers). Agreement = share of the
  reference's top-3 positive features found in the method's top 3 (per row, averaged), and the
  share of rows with the same top-3 set.
- **cost**: both methods from the champion's registered ONNX, against scoring the same rows with
  it (``scoring.score_batch``), one thread, best of 3.

Writes docs/benchmarks.md section ``explain`` unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._report import (  # noqa: E402
    DEFAULT_WORKDIR,
    add_lock_argument,
    bench_lock,
    machine,
    write_section,
)

GOAL_AGREEMENT, GOAL_COST = 0.80, 2.0


def _best_of(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def top3_sets(values: np.ndarray) -> list[frozenset]:
    from models_py.explain import top_reasons

    row, _, feature, _ = top_reasons(values)
    out: list[set] = [set() for _ in range(values.shape[0])]
    for r, f in zip(row.tolist(), feature.tolist(), strict=True):
        out[r].add(f)
    return [frozenset(s) for s in out]


def measure_group(con, group: str, model_id: str, rows: int) -> dict:
    import shap

    from models_py.explain import build_explainer, parse_tree_ensemble
    from models_py.explain._trees import tree_shap_values
    from models_py.training._candidates import build_estimator
    from scoring import load_model, score_batch

    algorithm, params, names, onnx_bytes, sha = con.execute(
        "select algorithm, hyperparameters, feature_names, onnx_model, onnx_sha256 "
        "from ml.model_registry where model_id = ?",
        [model_id],
    ).fetchall()[0]
    names = json.loads(names)
    columns = ", ".join(f'cast("{n}" as float)' for n in names)
    train = con.execute(
        f"select {columns}, label from marts.fct_training_examples "
        "where product_group = ? and split = 'train'",
        [group],
    ).fetchnumpy()
    X_train = np.column_stack([train[k] for k in list(train)[:-1]]).astype(np.float32)
    y_train = np.asarray(train["label"], dtype=int)
    scoring_rows = con.execute(
        f"select {columns} from marts.fct_scoring_features where product_group = ? "
        "order by hash(customer_id) limit ?",
        [group, rows],
    ).fetchnumpy()
    X = np.column_stack([scoring_rows[k] for k in scoring_rows]).astype(np.float32)
    # agreement, on the refitted base estimator
    est = build_estimator(algorithm, json.loads(params), n_features=len(names), random_state=0)
    est.fit(X_train, y_train)
    from skl2onnx import to_onnx

    onx = to_onnx(
        est,
        X[:1],
        options={id(est): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 1},
    )
    ens = parse_tree_ensemble(onx.SerializeToString(), model_id="refit", n_features=len(names))
    exact = shap.TreeExplainer(est).shap_values(X)
    if isinstance(exact, list):
        exact = exact[1]
    if exact.ndim == 3:
        exact = exact[:, :, 1]
    reference = top3_sets(np.asarray(exact))

    def agreement(values: np.ndarray) -> tuple[float, float]:
        pairs = [(x, y) for x, y in zip(top3_sets(values), reference, strict=True) if y]
        return (
            float(np.mean([len(x & y) / len(y) for x, y in pairs])),
            float(np.mean([x == y for x, y in pairs])),
        )

    saabas = agreement(build_explainer(ens, X).contributions(X))
    tree_shap = agreement(tree_shap_values(ens, X, X))
    # cost, on the registered champion
    model = load_model(onnx_bytes, sha, model_id=model_id, register=False)
    champion = parse_tree_ensemble(onnx_bytes, model_id=model_id, n_features=len(names))
    score_s = _best_of(lambda: score_batch(model, X))
    build_s = _best_of(lambda: build_explainer(champion, X))
    explainer = build_explainer(champion, X)
    saabas_s = _best_of(lambda: explainer.contributions(X))
    tree_shap_s = _best_of(lambda: tree_shap_values(champion, X, X), repeat=1)
    return {
        "group": group,
        "rows": int(X.shape[0]),
        "train_rows": int(X_train.shape[0]),
        "saabas_overlap": saabas[0],
        "saabas_same": saabas[1],
        "tree_shap_overlap": tree_shap[0],
        "tree_shap_same": tree_shap[1],
        "score_ms": score_s * 1000,
        "build_ms": build_s * 1000,
        "saabas_ms": saabas_s * 1000,
        "tree_shap_ms": tree_shap_s * 1000,
    }


def report(results: list[dict], facts: dict) -> str:
    lines = [
        "## Reason codes (issue 19): top-3 agreement with exact SHAP, cost against scoring",
        "",
        f"Machine: {facts['machine']}.",
        "",
        f"    {facts['command']}",
        "",
        f"A {facts['source_customers']:,}-customer generated warehouse (benchmarks/serve.py's "
        "source), one HGB champion per group, the rows of the scoring cutoff. **Agreement**: the "
        "share of exact SHAP's top-3 positive features (path-dependent TreeSHAP by "
        "`shap.TreeExplainer` of the refitted base estimator, log-odds, training covers) found in "
        "the method's top 3 (and the share of rows with the same set), for the two methods of "
        "`fct_score_reasons` run on that estimator's ONNX (covers from the rows explained). "
        "**Cost**: from the registered champion's ONNX, against `scoring.score_batch` of the same "
        "rows (one thread, best of 3); Saabas = a fixed build per group and cutoff (covers and "
        "the contribution model) plus a per-row pass.",
        "",
        "| group | rows | Saabas top-3 | TreeSHAP top-3 | scoring ms | Saabas build ms | "
        "Saabas rows ms | TreeSHAP ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['group']} | {r['rows']:,} | {r['saabas_overlap']:.1%} "
            f"({r['saabas_same']:.0%}) | {r['tree_shap_overlap']:.1%} ({r['tree_shap_same']:.0%}) "
            f"| {r['score_ms']:.1f} | {r['build_ms']:.1f} | {r['saabas_ms']:.1f} | "
            f"{r['tree_shap_ms']:.0f} |"
        )

    def total(key: str) -> float:
        return sum(r[key] for r in results)

    def mean(key: str) -> float:
        return float(np.mean([r[key] for r in results]))

    score = total("score_ms")
    lines += [
        f"| **all** | {sum(r['rows'] for r in results):,} | **{mean('saabas_overlap'):.1%}** "
        f"({mean('saabas_same'):.0%}) | **{mean('tree_shap_overlap'):.1%}** "
        f"({mean('tree_shap_same'):.0%}) | {score:.1f} | {total('build_ms'):.1f} | "
        f"{total('saabas_ms'):.1f} | {total('tree_shap_ms'):.0f} |",
        "",
        f"Cost against scoring the same rows: Saabas {total('saabas_ms') / score:.1f}x per row "
        f"(+ the build: {(total('build_ms') + total('saabas_ms')) / score:.1f}x at "
        f"{results[0]['rows']:,} rows per group), exact TreeSHAP "
        f"{total('tree_shap_ms') / score:.0f}x.",
        f"Goals: top-3 agreement >= {GOAL_AGREEMENT:.0%}, cost <= {GOAL_COST:.0f}x scoring.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source-customers", type=int, default=5_000)
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR / "serve")
    parser.add_argument("--no-write", action="store_true")
    add_lock_argument(parser)
    args = parser.parse_args()
    with bench_lock(args.lock):
        from benchmarks.serve import prepare_source

        source = prepare_source(args.workdir / f"c{args.source_customers}", args.source_customers)
        con = duckdb.connect(str(source), read_only=True)
        champions = con.execute(
            "select product_group, model_id from ml.model_aliases where alias = 'champion' "
            "order by 1"
        ).fetchall()
        results = []
        for group, model_id in champions:
            r = measure_group(con, group, model_id, args.rows)
            print(json.dumps(r), flush=True)
            results.append(r)
        con.close()
    facts = {
        "machine": machine(),
        "source_customers": args.source_customers,
        "command": ".venv/bin/python benchmarks/explain.py"
        + (f" --rows {args.rows}" if args.rows != 5000 else ""),
    }
    text = report(results, facts)
    print(text)
    if not args.no_write:
        write_section("explain", text)


if __name__ == "__main__":
    main()
