"""Offer policies against the truth (issue 15): the true incremental profit of each policy applied
to every customer at the scoring cutoff, from the generator's per-arm effects.

    .venv/bin/python benchmarks/uplift_offers.py [--customers 50000] [--reuse]

Builds (or, with ``--reuse``, reuses) a demo warehouse in ``--workdir`` with `propensity demo`,
which trains the propensity champions and the packaged uplift spec (``discount_uplift``,
models_py/training/specs/uplift.yml) and assigns the packaged offers
(models_py/offers/default.yml). Then, with raw.oracle_offer_effects (the true effect of each
discount arm offered at the scoring cutoff on the customer's expected margin; docs/oracle.md):

- true profit of a policy = sum over the customers it gives a treated arm of (true margin effect
  of that arm - cost per contact); the expected profit is the same sum with the model's
  cate_margin (fct_uplift_scores); both from marts.fct_offer_policy_profit;
- policies: the project's `discount_by_profit` and `discount_rule_table` offers
  (fct_offer_assignments), the oracle policy (each customer's arm with the highest true profit,
  when positive), everyone 20 %, nobody, the top propensity decile (group `any`) gets 25 %;
- the held-out Qini coefficient of the CATE estimate against the oracle CATE's on the same rows
  (ml.uplift_metrics of the champion set).

Goals: the project's policy >= 90 % of the oracle's true profit and above the three simple
policies; Qini >= 80 % of the oracle's. Writes docs/benchmarks.md section ``uplift_offers``
unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from benchmarks._report import (  # noqa: E402
    DEFAULT_WORKDIR,
    add_lock_argument,
    bench_lock,
    machine,
    write_section,
)

COST = 0.05  # cost per contact of models_py/offers/default.yml
PROJECT_OFFERS = ("discount_by_profit", "discount_rule_table")


def build(args) -> Path:
    """The demo warehouse (built unless --reuse finds it)."""
    from rich.console import Console

    from models_py._demo import run_demo
    from models_py._settings import Settings

    path = args.workdir / f"offers_{args.customers}.duckdb"
    if args.reuse and path.exists():
        return path
    path.unlink(missing_ok=True)
    started = time.perf_counter()
    run_demo(
        Settings(warehouse=path),
        customers=args.customers,
        seed=args.seed,
        console=Console(stderr=True),
        report_dir=args.workdir / "report",
    )
    logging.info("demo warehouse built in %.0f s", time.perf_counter() - started)
    return path


def measure(path: Path) -> dict:
    with closing(duckdb.connect(str(path), read_only=True)) as con:
        rows = con.execute(
            "select offer_id, policy, customers_offered, expected_profit, true_profit "
            "from marts.fct_offer_policy_profit order by offer_id, policy"
        ).fetchall()
        policies = {}
        for offer_id, policy, customers, expected, true in rows:
            # The simple policies are the same for both offers (same arms and costs).
            name = offer_id if policy == "offer" else policy
            policies[name] = {"customers": customers, "expected": expected, "true": true}
        base = con.execute(
            "select count(distinct customer_id) from marts.fct_uplift_scores"
        ).fetchone()[0]
        qini = con.execute(
            "select m.arm, m.outcome, m.treated, m.control, m.qini_coefficient, "
            "m.oracle_qini_coefficient from ml.uplift_metrics as m "
            "inner join ml.uplift_aliases as a on m.model_set_id = a.model_set_id "
            "where a.alias = 'champion' order by m.outcome, m.arm"
        ).fetchall()
        learner = con.execute(
            "select s.learner, s.model_set_id from ml.uplift_model_sets as s inner join "
            "ml.uplift_aliases as a using (model_set_id) where a.alias = 'champion'"
        ).fetchone()
    return {"policies": policies, "base": base, "qini": qini, "learner": learner}


def report(args, facts: dict) -> str:
    p = facts["policies"]
    oracle = p["oracle"]["true"]
    order = [
        "oracle",
        *[o for o in PROJECT_OFFERS if o in p],
        "nobody",
        "everyone_20",
        "everyone_25",
        "top_propensity_decile_25",
    ]
    lines = [
        "## Uplift: offer policies against the truth",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {machine()} with "
        f"`.venv/bin/python benchmarks/uplift_offers.py --customers {args.customers}`: demo "
        f"warehouse (seed {args.seed}), {facts['base']:,} customers at the scoring cutoff, "
        f"champion uplift set `{facts['learner'][0]}` for purchase plus the two-part revenue "
        f"model; cost per contact {COST}. True profit from raw.oracle_offer_effects (margin "
        "effect of the arm minus the contact cost, summed over the customers offered).",
        "",
        "| policy | customers offered | expected profit (model) | true profit | share of oracle |",
        "|---|---:|---:|---:|---:|",
    ]
    for name in order:
        r = p.get(name)
        if r is None:
            continue
        share = r["true"] / oracle if oracle else float("nan")
        lines.append(
            f"| {name} | {r['customers']:,} | {r['expected']:,.0f} | {r['true']:,.0f} | "
            f"{share:.1%} |"
        )
    lines += [
        "",
        "Held-out Qini coefficient of the champion set against the oracle CATE's on the same "
        "rows (purchase; the revenue rows have no oracle Qini):",
        "",
        "| arm | outcome | treated / control | Qini | oracle Qini | share |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for arm, outcome, treated, control, q, oq in facts["qini"]:
        share = f"{q / oq:.1%}" if oq else "-"
        oq_text = f"{oq:.4f}" if oq is not None else "-"
        lines.append(
            f"| {arm} | {outcome} | {treated:,} / {control:,} | {q:.4f} | {oq_text} | {share} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", action="store_true", help="reuse the warehouse if it exists")
    parser.add_argument("--no-write", action="store_true", help="do not update docs/")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR / "offers",
        help="the demo warehouse and report (default: TMPDIR/propensity-bench/offers)",
    )
    add_lock_argument(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args.workdir.mkdir(parents=True, exist_ok=True)
    with bench_lock(args.lock):
        path = build(args)
    body = report(args, measure(path))
    print(body)
    if not args.no_write:
        write_section("uplift_offers", body)


if __name__ == "__main__":
    main()
