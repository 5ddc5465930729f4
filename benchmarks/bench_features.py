"""Benchmark of the point-in-time feature layer (dbt + DuckDB) against pandas.

One command::

    .venv/bin/python benchmarks/bench_features.py            # 100k and 1M customers
    .venv/bin/python benchmarks/bench_features.py --sizes 100000 --workdir /tmp/bench

For each size: generate a synthetic warehouse (models_py.ingest.synth), then through dbt (2 threads)
1. build one cutoff from the raw tables in one `dbt run` (staging, intermediate tables, the
   scoring cutoff's feature marts; var feature_cutoff_roles=[scoring]),
2. run the same compiled SQL without dbt, into temp tables (the engine's floor for this SQL),
3. build the shared intermediate tables alone (lines collapsed to orders, etc.: once per build),
4. build the features of ONE cutoff alone, the intermediate tables being built,
5. build fct_customer_features for every cutoff (12 training + scoring) and fct_training_examples,
and compute the same one-cutoff features in pandas the way notebooks do (groupby on the line
table). Every step runs in a fresh child process; its peak memory is the child's (and dbt's)
maximum resident set size. Results go to the `features` section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import add_lock_argument, bench_lock, cpu_seconds, peak_mb, span_seconds  # noqa: E402

#: Catalogue features the pandas baseline leaves out (copies of a customer column or a lookup of
#: the RFM scores): every other feature of the catalogue is computed, or pandas_features raises.
NOT_IN_PANDAS = frozenset({"rfm_segment_code", "is_email_opt_in", "is_vip"})
INTERMEDIATE = (
    "+int_orders_summarised +int_order_groups_summarised +dim_cutoffs +dim_product_groups "
    "stg_raw__customers stg_raw__email_events"
)
ONE_CUTOFF = "fct_customer_features fct_customer_group_features"
# One cutoff from the raw tables in ONE `dbt run`, as a daily scoring build runs it: staging,
# intermediate tables and the scoring cutoff's feature marts (dbt overlaps independent models).
FROM_RAW = "+fct_customer_features +fct_customer_group_features"
SCORING_ONLY = {"feature_cutoff_roles": ["scoring"]}
ALL_CUTOFFS = "fct_customer_features fct_customer_group_features fct_training_examples"


def _settings(warehouse: str, project_dir: str = ""):
    """dbt settings of a benchmark step: 2 threads, the repo's dbt project or a copy of it."""
    from models_py._settings import Settings

    extra = {"dbt_project_dir": Path(project_dir)} if project_dir else {}
    return Settings(warehouse=Path(warehouse), threads=2, **extra)


def _child_dbt(warehouse: str, select: str, dbt_vars: dict, project_dir: str = "") -> dict:
    from models_py._dbt import dbt_target_path, run_dbt

    settings = _settings(warehouse, project_dir)
    started, cpu = time.perf_counter(), cpu_seconds()
    run_dbt(settings, ["run", "--full-refresh", "--select", *select.split()], dbt_vars=dbt_vars)
    seconds = time.perf_counter() - started
    # run_dbt's per-warehouse target path: model execution times without dbt's start-up.
    results = dbt_target_path(settings)
    nodes = json.loads((results / "run_results.json").read_text())["results"]
    models = {r["unique_id"].split(".")[-1]: r["execution_time"] for r in nodes}
    return {
        "seconds": seconds,
        "model_seconds": sum(models.values()),
        "span_seconds": span_seconds(nodes),
        "models": models,
        "cpu_seconds": cpu_seconds() - cpu,
        "peak_mb": peak_mb(),
    }


def pandas_features(con, cutoff) -> object:
    """One cutoff's features the notebook way: pandas groupbys over the order-line table.

    The feature names and windows come from the feature catalogue (models_py.catalogue).
    """
    import numpy as np
    import pandas as pd

    from models_py.catalogue import load_catalogue, windows

    catalogue = load_catalogue()
    order_windows = windows(catalogue, "orders")
    email_windows = windows(catalogue, "email")
    group_windows = windows(catalogue, "group")
    t = pd.Timestamp(cutoff)
    customers = con.execute("select * from raw.customers").df()
    orders = con.execute("select * from raw.orders").df()
    lines = con.execute("select * from raw.order_lines").df()
    events = con.execute("select * from raw.email_events").df()
    # The product -> group mapping (regex rules over ~2k products) is taken as built by dbt.
    mapping = con.execute(
        "select product_id, product_group from intermediate.int_products_mapped_to_groups "
        "where product_group != 'any'"
    ).df()
    started = time.perf_counter()
    customers = customers[customers["created_at"] < t].set_index("customer_id")
    df = lines.merge(orders, on="order_id")
    df = df[df["ordered_at"] < t]
    df["amount"] = df["quantity"] * df["unit_price"]
    df["date"] = df["ordered_at"].dt.normalize()
    df["bought"] = df["quantity"].clip(lower=0)
    df["is_purchase_line"] = df["quantity"] > 0
    df["is_return_line"] = df["quantity"] < 0
    df["returned"] = (-df["amount"]).where(df["is_return_line"], 0.0)
    per_order = df.groupby(["customer_id", "order_id", "date"], as_index=False).agg(
        net=("amount", "sum"),
        items=("bought", "sum"),
        returned=("returned", "sum"),
        is_purchase=("is_purchase_line", "max"),
        has_return=("is_return_line", "max"),
    )
    per_order["net"] = per_order["net"].round(2)
    feats = pd.DataFrame(index=customers.index)
    feats["tenure_days"] = (t - customers["created_at"].dt.normalize()).dt.days
    buys = per_order[per_order["is_purchase"]]
    g = buys.groupby("customer_id")
    feats["order_count"] = g.size()
    feats["spend_total"] = per_order.groupby("customer_id")["net"].sum()
    feats["days_since_last_order"] = (t - g["date"].max()).dt.days
    feats = feats.fillna({"order_count": 0, "spend_total": 0, "days_since_last_order": 3650})
    feats["avg_order_value"] = np.where(
        feats["order_count"] > 0, feats["spend_total"] / feats["order_count"].clip(lower=1), 0
    )
    buyers = feats["order_count"] > 0
    for name, col, asc in (
        ("rfm_recency_score", "days_since_last_order", False),
        ("rfm_frequency_score", "order_count", True),
        ("rfm_monetary_score", "spend_total", True),
    ):
        r = feats.loc[buyers, col].rank(method="min", ascending=asc)
        feats[name] = (1 + np.floor(5 * (r - 1) / buyers.sum())).reindex(feats.index).fillna(0)
    days = buys.groupby(["customer_id", "date"], as_index=False)["net"].sum()
    first = days.groupby("customer_id")["date"].transform("min")
    dg = days.groupby("customer_id")
    feats["btyd_frequency"] = dg.size() - 1
    feats["btyd_recency_days"] = (dg["date"].max() - dg["date"].min()).dt.days
    feats["btyd_age_days"] = ((t - pd.Timedelta(days=1)) - dg["date"].min()).dt.days
    feats["btyd_monetary_value"] = days[days["date"] > first].groupby("customer_id")["net"].mean()
    for w in order_windows:
        since = t - pd.Timedelta(days=w)
        o = per_order[per_order["date"] >= since]
        og = o.groupby("customer_id")
        feats[f"order_count_{w}d"] = o[o["is_purchase"]].groupby("customer_id").size()
        feats[f"spend_{w}d"] = og["net"].sum()
        feats[f"items_{w}d"] = og["items"].sum()
        li = df[(df["date"] >= since) & df["is_purchase_line"]]
        feats[f"distinct_products_{w}d"] = li.groupby("customer_id")["product_id"].nunique()
        feats[f"return_count_{w}d"] = og["has_return"].sum()
        feats[f"return_amount_{w}d"] = og["returned"].sum()
    ev = events[events["occurred_at"] < t]
    for w in email_windows:
        e = ev[ev["occurred_at"] >= t - pd.Timedelta(days=w)]
        counts = e.groupby(["customer_id", "event_type"]).size().unstack(fill_value=0)
        counts = counts.reindex(columns=["sent", "open", "click"], fill_value=0)
        feats[f"email_sends_{w}d"] = counts["sent"]
        feats[f"email_opens_{w}d"] = counts["open"]
        feats[f"email_clicks_{w}d"] = counts["click"]
    last = ev.groupby(["customer_id", "event_type"])["occurred_at"].max().unstack()
    for kind in ("open", "click"):
        if kind in last:
            feats[f"days_since_last_{kind}"] = (t - last[kind].dt.normalize()).dt.days
    feats["is_unsubscribed"] = (
        ev[ev["event_type"] == "unsubscribe"].groupby("customer_id").size() > 0
    ).astype(int)
    feats = feats.fillna(0)
    for w in email_windows:
        sends = feats[f"email_sends_{w}d"]
        for kind in ("opens", "clicks"):
            feats[f"email_{kind[:-1]}_rate_{w}d"] = np.where(
                sends > 0, (feats[f"email_{kind}_{w}d"] / sends.clip(lower=1)).clip(upper=1), 0
            )
    # Per product-group features (the SQL computes them in the same cutoff): lines joined to the
    # product -> group mapping, collapsed to (order, group), groupby per window; `any` = orders.
    group_lines = df.merge(mapping, on="product_id")
    per_group_order = group_lines.groupby(
        ["customer_id", "product_group", "order_id", "date"], as_index=False
    ).agg(net=("amount", "sum"), is_purchase=("is_purchase_line", "max"))
    per_group_order["net"] = per_group_order["net"].round(2)
    any_group = per_order[["customer_id", "order_id", "date", "net", "is_purchase"]].assign(
        product_group="any"
    )
    og = pd.concat([per_group_order, any_group], ignore_index=True)
    keys = ["customer_id", "product_group"]
    group_feats = pd.DataFrame(index=pd.MultiIndex.from_frame(og[keys].drop_duplicates()))
    for w in group_windows:
        o = og[og["date"] >= t - pd.Timedelta(days=w)]
        group_feats[f"group_spend_{w}d"] = o.groupby(keys)["net"].sum()
        group_feats[f"group_order_count_{w}d"] = o[o["is_purchase"]].groupby(keys).size()
    last_group = og[og["is_purchase"]].groupby(keys)["date"].max()
    group_feats["group_days_since_last_order"] = (t - last_group).dt.days.clip(upper=3650)
    group_feats = group_feats.fillna({"group_days_since_last_order": 3650}).fillna(0)
    feats.attrs["group_rows"] = len(group_feats)
    seconds = time.perf_counter() - started
    for grain, frame, skip in (
        ("customer", feats, NOT_IN_PANDAS),
        ("customer_group", group_feats, frozenset()),
    ):
        expected = {f.name for f in catalogue if f.grain == grain} - skip
        got = set(frame.columns)
        missing, extra = sorted(expected - got), sorted(got - expected)
        if missing or extra:
            raise RuntimeError(
                f"the pandas baseline's {grain} features differ from the feature catalogue "
                f"(models_py.catalogue): missing {missing}, extra {extra}"
            )
    return feats, seconds


def _child_pandas(warehouse: str) -> dict:
    import duckdb

    con = duckdb.connect(warehouse, read_only=True)
    cutoff = con.execute(
        "select as_of_date from marts.dim_cutoffs where cutoff_role = 'scoring'"
    ).fetchone()[0]
    started, cpu = time.perf_counter(), cpu_seconds()
    feats, compute = pandas_features(con, cutoff)
    total = time.perf_counter() - started
    con.close()
    return {
        "seconds": total,
        "compute_seconds": compute,
        "cpu_seconds": cpu_seconds() - cpu,
        "peak_mb": peak_mb(),
        "rows": len(feats),
        "columns": feats.shape[1],
        "group_rows": feats.attrs.get("group_rows", 0),
    }


FLOOR_MODELS = (
    ("intermediate", "int_orders_summarised", "table"),
    ("intermediate", "int_order_groups_from_lines", "table"),
    ("intermediate", "int_order_groups_summarised", "view"),
    ("marts", "fct_customer_features", "table"),
    ("marts", "fct_customer_group_features", "table"),
)


def _child_floor(warehouse: str, project_dir: str = "") -> dict:
    """The SQL of one cutoff from raw without dbt and without storing anything: dbt compiles the
    models (scoring cutoff only), then one DuckDB connection (2 threads, the profile's settings)
    runs them in order into TEMP tables. What remains is the engine's work on this SQL."""
    import duckdb

    from models_py._dbt import dbt_target_path, run_dbt

    settings = _settings(warehouse, project_dir)
    names = [name for _, name, _ in FLOOR_MODELS]
    run_dbt(settings, ["compile", "--select", *names], dbt_vars=SCORING_ONLY)
    compiled = dbt_target_path(settings) / "compiled"
    db = settings.warehouse.stem
    sql = {}
    for _, name, _ in FLOOR_MODELS:
        text = next(compiled.rglob(f"{name}.sql")).read_text()
        for other_schema, other, _ in FLOOR_MODELS:
            text = text.replace(f'"{db}"."{other_schema}"."{other}"', f"temp.main.{other}")
        sql[name] = text
    con = duckdb.connect(warehouse, read_only=True)
    try:
        con.execute("set threads = 2; set preserve_insertion_order = false")
        started, cpu = time.perf_counter(), cpu_seconds()
        for _, name, kind in FLOOR_MODELS:
            con.execute(f"create temp {kind} {name} as {sql[name]}")
        seconds = time.perf_counter() - started
        cpu = cpu_seconds() - cpu
        rows = con.execute("select count(*) from fct_customer_features").fetchone()[0]
    finally:
        con.close()
    return {"seconds": seconds, "cpu_seconds": cpu, "peak_mb": peak_mb(), "rows": rows}


def _child_generate(warehouse: str, customers: int) -> dict:
    from models_py.ingest.synth import generate_warehouse

    started = time.perf_counter()
    generate_warehouse(warehouse, customers=customers, seed=1)
    return {"seconds": time.perf_counter() - started, "peak_mb": peak_mb()}


def _run_child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark step {args[0]} failed:\n{out.stdout}\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _counts(warehouse: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(warehouse), read_only=True)
    try:
        q = lambda sql: con.execute(sql).fetchone()[0]  # noqa: E731
        return {
            "customers": q("select count(*) from raw.customers"),
            "orders": q("select count(*) from raw.orders"),
            "lines": q("select count(*) from raw.order_lines"),
            "email_events": q("select count(*) from raw.email_events"),
            "groups": q("select count(*) from marts.dim_product_groups where is_active"),
            "cutoffs": q("select count(*) from marts.dim_cutoffs"),
            "training_rows": q("select count(*) from marts.fct_training_examples"),
        }
    finally:
        con.close()


def bench_size(customers: int, workdir: Path, project_dir: str = "") -> dict:
    warehouse = workdir / f"features_{customers}.duckdb"
    result: dict = {"customers": customers, "load_before": os.getloadavg()[0]}
    if not warehouse.exists():
        result["generate"] = _run_child("generate", str(warehouse), str(customers))
    one = json.dumps(SCORING_ONLY)
    wh = str(warehouse)
    result["from_raw"] = _run_child("dbt", wh, FROM_RAW, one, project_dir)
    result["floor"] = _run_child("floor", wh, project_dir)
    result["intermediate"] = _run_child("dbt", wh, INTERMEDIATE, "{}", project_dir)
    result["one_cutoff"] = _run_child("dbt", wh, ONE_CUTOFF, one, project_dir)
    result["all_cutoffs"] = _run_child("dbt", wh, ALL_CUTOFFS, "{}", project_dir)
    result["pandas"] = _run_child("pandas", str(warehouse))
    result["counts"] = _counts(warehouse)
    result["load_after"] = os.getloadavg()[0]
    return result


def _from_raw(r: dict) -> dict:
    """Everything one cutoff needs from the raw tables: the intermediate tables plus the cutoff.

    Measured as one `dbt run` (step from_raw); results of older runs without it add the two steps.
    """
    if "from_raw" in r:
        return r["from_raw"]
    inter, one = r["intermediate"], r["one_cutoff"]
    return {
        "seconds": inter["seconds"] + one["seconds"],
        "model_seconds": inter["model_seconds"] + one["model_seconds"],
        "cpu_seconds": inter.get("cpu_seconds", 0.0) + one.get("cpu_seconds", 0.0),
        "peak_mb": max(inter["peak_mb"], one["peak_mb"]),
    }


def _span(step: dict) -> float:
    """SQL span of a dbt step (older results without it: the sum of model times)."""
    return step.get("span_seconds", step.get("model_seconds", step["seconds"]))


def report(results: list[dict]) -> str:
    from _report import machine

    lines = [
        "## features",
        "",
        "Point-in-time features through dbt on DuckDB (2 threads) versus the same one-cutoff "
        "features in pandas (groupbys over the line table, as notebooks do).",
        "Command: `.venv/bin/python benchmarks/bench_features.py` "
        "(sizes " + ", ".join(f"{r['customers']:,}" for r in results) + ").",
        f"Machine: {machine()}.",
        "",
        "Goals: one cutoff at 1M customers <= 30 s on 2 cores; >= 5x faster than pandas; "
        "linear in data size.",
        "",
        "SQL span: from the start of dbt's first model to the end of its last one (dbt's "
        "start-up excluded; with 2 threads dbt runs independent models at once, so the span is "
        "less than the sum of the models' times, also shown). For pandas the same column is the "
        "compute time (the tables already in memory) and the wall time adds reading them.",
        "",
        "| customers | order lines | email events | step | SQL span (s) | sum of model times "
        "(s) | wall incl. dbt start-up (s) | CPU s (all threads) | peak memory (MB) |",
        "|---:|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        c = r["counts"]
        steps = [
            (
                "one cutoff from raw tables: one `dbt run` (staging, intermediate tables, the "
                "cutoff's feature marts)",
                _from_raw(r),
            ),
            *(
                [
                    (
                        "the same SQL without dbt, nothing stored (compiled models run in one "
                        "DuckDB connection into temp tables)",
                        {**r["floor"], "compute_seconds": r["floor"]["seconds"]},
                    )
                ]
                if "floor" in r
                else []
            ),
            ("intermediate tables alone (once per build)", r["intermediate"]),
            ("features of one cutoff alone, intermediate tables built (dbt)", r["one_cutoff"]),
            (
                f"features + training examples, {c['cutoffs']} cutoffs x {c['groups']} groups "
                f"= {c['training_rows']:,} rows (dbt)",
                r["all_cutoffs"],
            ),
            ("pandas, one cutoff incl. group features", r["pandas"]),
        ]
        for name, st in steps:
            if "compute_seconds" in st:
                span, total = f"{st['compute_seconds']:.1f}", "-"
            else:
                span, total = f"{_span(st):.1f}", f"{st['model_seconds']:.1f}"
            lines.append(
                f"| {c['customers']:,} | {c['lines']:,} | {c['email_events']:,} | {name} | "
                f"{span} | {total} | {st['seconds']:.1f} | "
                f"{st.get('cpu_seconds', float('nan')):.1f} | {st['peak_mb']:,.0f} |"
            )
    lines += [
        "",
        "| customers | one cutoff from raw: SQL span (s) | pandas compute (s) | pandas compute / "
        "SQL span | dbt wall incl. start-up (s) | pandas wall incl. reading (s) | pandas wall / "
        "dbt wall | per-cutoff only: pandas / SQL span | <= 30 s and >= 5x (span vs compute) |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        raw, pd_ = _from_raw(r), r["pandas"]
        span, pandas_s = _span(raw), pd_["compute_seconds"]
        ok = span <= 30 and pandas_s / span >= 5
        lines.append(
            f"| {r['customers']:,} | {span:.1f} | {pandas_s:.1f} | {pandas_s / span:.1f}x | "
            f"{raw['seconds']:.1f} | {pd_['seconds']:.1f} | {pd_['seconds'] / raw['seconds']:.1f}x"
            f" | {pandas_s / _span(r['one_cutoff']):.1f}x | {'yes' if ok else 'no'} |"
        )
    last = results[-1]
    if "floor" in last:
        floor, span = last["floor"]["seconds"], _span(_from_raw(last))
        pandas_s = last["pandas"]["compute_seconds"]
        lines += [
            "",
            f"Floor at {last['customers']:,} customers: the same SQL without dbt and without "
            f"storing anything took {floor:.1f} s ({last['floor']['cpu_seconds']:.1f} CPU s): "
            f"pandas compute / floor = {pandas_s / floor:.1f}x. dbt, the stored tables and the "
            f"models sharing 2 cores add {span - floor:.1f} s; the rest is the engine's work on "
            "this SQL (docs/features.md, section Speed, lists what was tried).",
        ]
    slow = last["intermediate"]["models"]
    top = sorted(((k, v) for k, v in slow.items() if k.startswith("int_")), key=lambda kv: -kv[1])
    lines += [
        "",
        f"Intermediate tables at {last['customers']:,} customers: "
        + ", ".join(f"{k} {v:.1f} s" for k, v in top if v >= 0.05)
        + ". They are built once per `dbt build` and shared by every cutoff.",
        "",
        f"One cutoff at {last['customers']:,} customers (the two marts run at once): "
        + ", ".join(
            f"{k} {v:.1f} s"
            for k, v in sorted(last["one_cutoff"]["models"].items(), key=lambda kv: -kv[1])
            if k.startswith("fct_")
        )
        + ".",
    ]
    if len(results) >= 2:
        a, b = results[0], results[-1]
        size = b["counts"]["lines"] / a["counts"]["lines"]
        grew = _span(_from_raw(b)) / _span(_from_raw(a))
        lines += [
            "",
            f"Scaling: {size:.1f}x the order lines took {grew:.1f}x the SQL span for one "
            "cutoff from raw and "
            f"{_span(b['all_cutoffs']) / _span(a['all_cutoffs']):.1f}x for all cutoffs with "
            "training examples.",
        ]
    lines += [
        "",
        "Machine load (1-minute load average before / after each size): "
        + ", ".join(
            f"{r['customers']:,}: {r.get('load_before', float('nan')):.1f} / "
            f"{r.get('load_after', float('nan')):.1f}"
            for r in results
        )
        + ".",
        "",
        "Notes: the intermediate tables collapse order lines to one row per order "
        "(int_orders_summarised) and to one row per (order, configured product group) "
        "(int_order_groups_from_lines) once; `any` is the orders table itself, added by a view "
        "instead of being written again. Each cutoff is one aggregate over them (no join of "
        "events to all cutoffs, no window function over the lines, no customer-by-day table); "
        "distinct products and email features are aggregated per cutoff straight from the "
        "staged lines and events; distinct purchase days (BTYD) are a count of the orders "
        "int_orders_summarised flags as a customer's first purchase of the day. The feature "
        "marts and "
        "fct_training_examples are built one cutoff per statement (materialization "
        "propensity_by_cutoff), so a 13-cutoff build holds the hash tables of one cutoff at a "
        "time. The pandas baseline computes the same customer features and the per-group "
        "features (lines merged with the product-group mapping as built by dbt). CPU s is user "
        "+ system time of the step's processes (dbt included). The profile sets DuckDB's "
        "preserve_insertion_order=false: no built table relies on row order.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--workdir", default=None, help="keep generated warehouses here")
    parser.add_argument(
        "--report-from", default=None, help="rewrite the docs section from a results JSON file"
    )
    parser.add_argument(
        "--dbt-project-dir", default="", help="a copy of dbt_project to run (default: the repo's)"
    )
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-write", action="store_true", help="do not update docs/")
    add_lock_argument(parser)
    args = parser.parse_args()
    if args.child is not None:
        run(args)
        return
    with bench_lock(args.lock):
        run(args)


def run(args) -> None:
    """The benchmark itself, under the lock."""
    if args.child:
        step, *rest = json.loads(args.child)
        if step == "dbt":
            out = _child_dbt(rest[0], rest[1], json.loads(rest[2]), *rest[3:])
        elif step == "pandas":
            out = _child_pandas(rest[0])
        elif step == "floor":
            out = _child_floor(rest[0], *rest[1:])
        else:
            out = _child_generate(rest[0], int(rest[1]))
        print(json.dumps(out))
        return
    from _report import write_section

    if args.report_from:
        results = json.loads(Path(args.report_from).read_text())
        write_section("features", report(results))
        print(report(results))
        return
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="bench_features_"))
    workdir.mkdir(parents=True, exist_ok=True)
    results = []
    for size in (int(s) for s in args.sizes.split(",")):
        results.append(bench_size(size, workdir, args.dbt_project_dir))
        print(json.dumps(results[-1], indent=1), flush=True)
        (workdir / "results.json").write_text(json.dumps(results, indent=1))
    if not args.no_write:
        write_section("features", report(results))
    print(report(results))


if __name__ == "__main__":
    main()
