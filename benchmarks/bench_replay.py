"""Replay benchmark of issue 14: 26 weekly steps with a regime shift at week 13, three policies.

    .venv/bin/python benchmarks/bench_replay.py [--customers 50000] [--weeks 26] [--reuse]

Two replays (`propensity replay`, models_py/operations/_replay.py) of the generated history
ending 2026-10-01, on the lean replay spec (one gradient-boosting candidate for `any`, `sweets`
and `wine`, training cutoffs 30 days apart):

- ``shift``: the generator's regime shift (``--shift``, default ``migration``: a new product
  line moves purchases between groups and opens are tracked differently; docs/oracle.md) at the
  step in the middle of the replay, replayed with the policies ``never``, ``weekly`` and
  ``if-needed``;
- ``no shift``: the same history without the shift, replayed with ``never`` (its models age
  the longest, so it is the hardest case for false alerts) and ``if-needed``.

From the timelines (``replay.timeline`` of ``--workdir``/results.duckdb) it checks what the
issue asks: the feature drift alert fires within two scoring runs after the shift and never
without it; ``if-needed`` keeps the realised ROC AUC after the shift within 0.01 of ``weekly``
with at most a third of its retrains; ``never`` shows the decay; the estimated ROC AUC is within
0.01 of the realised one while nothing shifts. Writes docs/benchmarks.md section ``replay``
unless ``--no-write``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
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

END_DATE = dt.date(2026, 10, 1)
SHIFT_POLICIES = ("never", "weekly", "if-needed")
CALM_POLICIES = ("never", "if-needed")
ALERT_PSI = 0.25  # the default dbt var drift_psi_alert


def run_replays(args) -> dict:
    from models_py._settings import Settings
    from models_py.operations._replay import plan_replay, replay_generated

    results = args.workdir / "results.duckdb"
    plan = plan_replay(weeks=args.weeks, data_end=END_DATE)
    shift_at = plan.steps[args.weeks // 2]
    runs = {
        "shift": dict(shift_at=shift_at, shift=args.shift, policies=SHIFT_POLICIES),
        "no shift": dict(shift_at=None, shift=None, policies=CALM_POLICIES),
    }
    seconds = {}
    done = _replayed(results) if args.reuse else set()
    for label, options in runs.items():
        todo = [p for p in options["policies"] if (label, p) not in done]
        if not todo:
            print(f"{label}: reusing the timeline in {results}", flush=True)
            continue
        options = {**options, "policies": todo}
        started = time.perf_counter()
        report = replay_generated(
            Settings(),
            weeks=args.weeks,
            customers=args.customers,
            end_date=END_DATE,
            workdir=args.workdir / label.replace(" ", "_"),
            results=results,
            label=label,
            **options,
        )
        seconds[label] = {**report.seconds, "total": time.perf_counter() - started}
        print(report.text(), flush=True)
    facts_file = args.workdir / "facts.json"
    facts = json.loads(facts_file.read_text()) if facts_file.exists() else {}
    facts.update(
        {
            "customers": args.customers,
            "weeks": args.weeks,
            "shift": args.shift,
            "shift_at": shift_at.isoformat(),
            "shift_step": args.weeks // 2,
            "first_step": plan.steps[0].isoformat(),
            "last_step": plan.steps[-1].isoformat(),
        }
    )
    for label, value in seconds.items():  # merged: a --reuse run adds its policies' times
        stored = facts.setdefault("seconds", {}).setdefault(label, {})
        stored.pop("total", None)
        stored.update({k: v for k, v in value.items() if k != "total"})
    facts_file.write_text(json.dumps(facts, indent=1))
    return facts


def _replayed(results: Path) -> set[tuple[str, str]]:
    """The (label, policy) pairs whose timeline is in `results` (``--reuse`` skips them)."""
    if not results.exists():
        return set()
    with closing(duckdb.connect(str(results), read_only=True)) as con:
        try:
            return set(con.execute("select distinct label, policy from replay.timeline").fetchall())
        except duckdb.CatalogException:
            return set()


def measure(results: Path, facts: dict) -> dict:
    """The issue's figures from the timelines."""
    s0 = facts["shift_step"]
    with closing(duckdb.connect(str(results), read_only=True)) as con:

        def rows(sql: str, params: list | None = None) -> list[tuple]:
            return con.execute(sql, params or []).fetchall()

        alerts = rows(
            """
            select product_group, min(step) as first_step,
                   arg_min(alerted_features, step) as features
            from replay.timeline
            where label = 'shift' and policy = 'never' and step > ? and feature_alerts > 0
            group by product_group order by product_group
            """,
            [s0],
        )
        false_alerts = rows(
            """
            select label, policy, count(*) filter (where feature_alerts > 0),
                   count(*) filter (where score_psi >= ?), count(*),
                   max(max_feature_psi), max(score_psi)
            from replay.timeline
            where label = 'no shift' or step <= ?
            group by label, policy order by label, policy
            """,
            [ALERT_PSI, s0],
        )
        # Realised ROC AUC after the shift: the steps whose features see it (step > s0).
        auc = rows(
            """
            select policy, product_group,
                   avg(realised_roc_auc) filter (where step + 30 / 7 < ?) as before,
                   avg(realised_roc_auc) filter (where step > ?) as after,
                   count(*) filter (where decision = 'retrain' and step > 0) as retrains,
                   count(distinct model_id) - 1 as promotions
            from replay.timeline where label = 'shift'
            group by policy, product_group order by policy, product_group
            """,
            [s0, s0],
        )
        estimate = rows(
            """
            select policy, product_group, count(*),
                   avg(abs(estimated_roc_auc - realised_roc_auc)),
                   max(abs(estimated_roc_auc - realised_roc_auc))
            from replay.timeline where label = 'no shift'
            group by policy, product_group order by policy, product_group
            """
        )
        shifted_estimate = rows(
            """
            select product_group, max(abs(estimated_roc_auc - realised_roc_auc)),
                   arg_max(step, abs(estimated_roc_auc - realised_roc_auc))
            from replay.timeline
            where label = 'shift' and policy = 'never' and step > ?
            group by product_group order by product_group
            """,
            [s0],
        )
        curve = rows(
            """
            select step, as_of_date, policy, avg(realised_roc_auc)
            from replay.timeline where label = 'shift'
            group by step, as_of_date, policy order by step, policy
            """
        )
    return {
        "alerts": alerts,
        "false_alerts": false_alerts,
        "auc": auc,
        "estimate": estimate,
        "shifted_estimate": shifted_estimate,
        "curve": curve,
    }


def report(facts: dict, m: dict) -> str:
    s0 = facts["shift_step"]
    by = {(p, g): (b, a, r) for p, g, b, a, r, _ in m["auc"]}
    promoted = {(p, g): n for p, g, *_, n in m["auc"]}
    groups = sorted({g for _, g in by})
    lines = [
        "## Replay (issue 14): 26 weekly steps, a regime shift at week 13, three policies",
        "",
        f"Machine: {machine()}.",
        "",
        f"Command: `.venv/bin/python benchmarks/bench_replay.py --customers "
        f"{facts['customers']} --weeks {facts['weeks']}` (`propensity replay` twice: the "
        f"generated history ending {END_DATE} with the `{facts['shift']}` shift at "
        f"{facts['shift_at']} (step {s0}) and the policies never, weekly and if-needed; the "
        "same history without the shift with never and if-needed). Steps "
        f"{facts['first_step']} .. {facts['last_step']}; lean replay spec (one HGB candidate for "
        "`any`, `sweets`, `wine`; training cutoffs 30 days apart). Step k's features see orders "
        f"before its date only, so step {s0} (the shift date) sees none of the shift.",
        "",
    ]
    if facts.get("seconds"):
        lines.append(
            "Wall time: "
            + "; ".join(
                f"{label}: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in secs.items())
                for label, secs in facts["seconds"].items()
            )
            + "."
        )
        lines.append("")
    lines += ["### Drift alerts", ""]
    lines += [
        "| group | first step with a feature alert after the shift | scoring runs after the "
        "shift | features in alert then |",
        "|---|---:|---:|---|",
    ]
    for g, first, features in m["alerts"]:
        lines.append(f"| {g} | {first} | {first - s0} | {features} |")
    within = bool(m["alerts"]) and all(first - s0 <= 2 for _, first, _ in m["alerts"])
    lines += [
        "",
        f"Goal: an alert within two scoring runs after the shift: "
        f"**{'met' if within and len(m['alerts']) == len(groups) else 'not met'}**.",
        "",
        "| replay | policy | (step, group) rows | with a feature alert | with a score alert | "
        "largest feature PSI | largest score PSI |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    calm_alerts = 0
    for label, policy, fa, sa, n, fpsi, spsi in m["false_alerts"]:
        scope = label if label == "no shift" else f"shift, steps <= {s0}"
        lines.append(f"| {scope} | {policy} | {n} | {fa} | {sa} | {_f(fpsi, 3)} | {_f(spsi, 3)} |")
        calm_alerts += fa + sa
    lines += [
        "",
        f"Goal: no alert without the shift: **{'met' if calm_alerts == 0 else 'not met'}** "
        f"({calm_alerts} alerted rows).",
        "",
        "### Realised ROC AUC and retrains",
        "",
        "Mean realised ROC AUC per group before the shift (steps whose label window ends by it) "
        f"and after it (steps > {s0}); retrains = retrain decisions over the replay; new "
        "champions = challengers that passed the promotion gate (ROC AUC + 0.005 on the newest "
        "test cutoff) and scored later steps.",
        "",
        "| group | never before | never after | weekly after | if-needed after | if-needed - "
        "weekly | retrains weekly | retrains if-needed | new champions weekly | new champions "
        "if-needed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    gaps, ratio_ok = [], True
    total = {"weekly": 0, "if-needed": 0}
    for g in groups:
        nb, na, _ = by.get(("never", g), (None, None, 0))
        _, wa, wr = by.get(("weekly", g), (None, None, 0))
        _, ia, ir = by.get(("if-needed", g), (None, None, 0))
        gap = None if ia is None or wa is None else ia - wa
        gaps.append(gap)
        total["weekly"] += wr
        total["if-needed"] += ir
        lines.append(
            f"| {g} | {_f(nb)} | {_f(na)} | {_f(wa)} | {_f(ia)} | {_f(gap, sign=True)} | {wr} | "
            f"{ir} | {promoted.get(('weekly', g), '-')} | {promoted.get(('if-needed', g), '-')} |"
        )
    ratio_ok = total["if-needed"] * 3 <= total["weekly"]
    gap_ok = all(gap is not None and gap >= -0.01 for gap in gaps)
    decay = [
        (g, by[("never", g)][0] - by[("never", g)][1])
        for g in groups
        if ("never", g) in by and None not in by[("never", g)][:2]
    ]
    lines += [
        "",
        f"Goal: if-needed within 0.01 of weekly after the shift: "
        f"**{'met' if gap_ok else 'not met'}**; with at most a third of its retrains: "
        f"**{'met' if ratio_ok else 'not met'}** ({total['if-needed']} vs {total['weekly']}). "
        "`never` loses "
        + (
            ", ".join(f"{g} {d:.4f}" for g, d in decay)
            + " ROC AUC from before the shift to after it"
            if decay
            else "- (no step's label window ends before the shift)"
        )
        + ".",
        "",
        *(
            [
                "No retrain of either policy produced a challenger that passed the promotion "
                "gate, so the three policies scored with the same champions and the comparison "
                "above holds trivially: after this shift retraining changes the cost, not the "
                "ROC AUC. Why (the split protocol keeps post-shift labels out of the train split "
                "for three label horizons) and what would change it: docs/operations.md, "
                '"Replay: the policies over generated history".',
                "",
            ]
            if not any(promoted.get((p, g)) for p in ("weekly", "if-needed") for g in groups)
            else []
        ),
        "### Estimated vs realised ROC AUC without the shift",
        "",
        "| policy | group | steps | mean abs. error | max abs. error |",
        "|---|---|---:|---:|---:|",
    ]
    worst = 0.0
    for policy, g, n, mean_err, max_err in m["estimate"]:
        lines.append(f"| {policy} | {g} | {n} | {_f(mean_err)} | {_f(max_err)} |")
        worst = max(worst, max_err or 0.0)
    lines += [
        "",
        f"Goal: within 0.01 while nothing shifts: **{'met' if worst <= 0.01 else 'not met'}** "
        f"(largest error {worst:.4f}). After the shift (policy never) the largest error is "
        + ", ".join(f"{g} {e:.4f} (step {k})" for g, e, k in m["shifted_estimate"])
        + ": the estimate assumes the calibration still holds, and the shift moved the email "
        "features the scores use.",
        "",
        "### Mean realised ROC AUC over the groups, per step",
        "",
        "| step | as of | " + " | ".join(SHIFT_POLICIES) + " |",
        "|---:|---|" + "---:|" * len(SHIFT_POLICIES),
    ]
    steps: dict[tuple, dict] = {}
    for step, as_of, policy, value in m["curve"]:
        steps.setdefault((step, as_of), {})[policy] = value
    for (step, as_of), values in sorted(steps.items()):
        mark = " (shift)" if step == s0 else ""
        lines.append(
            f"| {step}{mark} | {as_of} | "
            + " | ".join(_f(values.get(p)) for p in SHIFT_POLICIES)
            + " |"
        )
    lines.append("")
    return "\n".join(lines)


def _f(value, digits: int = 4, sign: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=50_000)
    parser.add_argument("--weeks", type=int, default=26)
    parser.add_argument("--shift", default="migration", help="kind of regime shift")
    parser.add_argument(
        "--reuse", action="store_true", help="skip the (replay, policy) timelines already stored"
    )
    parser.add_argument("--no-write", action="store_true", help="do not update docs/")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=DEFAULT_WORKDIR / "replay",
        help="warehouses and timelines (default: TMPDIR/propensity-bench/replay)",
    )
    add_lock_argument(parser)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    args.workdir.mkdir(parents=True, exist_ok=True)
    with bench_lock(args.lock):
        facts = run_replays(args)
    body = report(facts, measure(args.workdir / "results.duckdb", facts))
    print(body)
    if not args.no_write:
        write_section("replay", body)


if __name__ == "__main__":
    main()
