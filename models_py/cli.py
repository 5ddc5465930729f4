"""The `propensity` command. Each command parses its arguments and calls one library function."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import sys
import time
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path
from typing import TYPE_CHECKING

from models_py._errors import ConfigError, is_known_error
from models_py._settings import Settings

if TYPE_CHECKING:
    from models_py.training._train import TrainReport

logger = logging.getLogger("models_py")


def _console():
    import os
    import sys

    from rich.console import Console

    # Piped or logged output (CI, `make demo > log`) has no terminal width; rich would use 80
    # columns and truncate the summary tables' headers and values. COLUMNS still wins.
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
    return Console(stderr=False, highlight=False, markup=False, soft_wrap=True, width=width)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        warehouse=getattr(args, "warehouse", None), engine=getattr(args, "engine", None)
    )


_SPARK_COMMANDS = "generate, load online-retail, build, train, run daily, report"
#: The Spark tables `propensity report --engine spark` copies into the local file first.
SPARK_REPORT_TABLES = (
    "dim_product_groups",
    "dim_cutoffs",
    "fct_propensity_scores",
    "dim_customer_propensity",
)


def _on_spark(settings: Settings) -> bool:
    """True on the Spark engine (`_refuse_on_spark` has let only its commands through)."""
    return settings.engine == "spark"


def _copy_raw_to_spark(settings: Settings) -> None:
    """After a generator or loader wrote the DuckDB file: the same raw tables as Spark tables."""
    from models_py.spark import copy_raw_from_duckdb

    counts = copy_raw_from_duckdb(settings)
    _console().print(
        f"Spark tables under {settings.spark_path}: "
        + ", ".join(f"raw.{t} {n:,}" for t, n in counts.items())
    )


def _dbt_vars(text: str | None) -> dict[str, object]:
    """`--vars` as dbt takes it: a YAML (or JSON) mapping, e.g. '{horizon_days: 60}'."""
    if not text:
        return {}
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--vars is not a YAML mapping: {exc}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"--vars must be a mapping such as '{{horizon_days: 60}}', got {text!r}")
    return value


# ---------------------------------------------------------------------------------------- commands


def cmd_generate(args: argparse.Namespace) -> int:
    from models_py.ingest.synth import generate_warehouse

    settings = _settings(args)
    if args.shift is not None and args.shift_at is None:
        raise ConfigError("--shift needs --shift-at DATE (the first day of the new regime)")
    report = generate_warehouse(
        settings.warehouse,
        customers=args.customers,
        seed=args.seed,
        days=args.days,
        **({"end_date": args.end_date} if args.end_date else {}),
        observable_cutoffs=args.observable_cutoffs,
        shift_at=args.shift_at,
        **({"shift": args.shift} if args.shift else {}),
    )
    _console().print(report.summary())
    if _on_spark(settings):
        _copy_raw_to_spark(settings)
    return 0


def cmd_load_online_retail(args: argparse.Namespace) -> int:
    from models_py.ingest.loaders import load_online_retail

    settings = _settings(args)
    report = load_online_retail(args.path, settings.warehouse)
    _console().print(report.summary())
    if _on_spark(settings):
        _copy_raw_to_spark(settings)
    return 0


def cmd_load_marketing_campaign(args: argparse.Namespace) -> int:
    from models_py.ingest.loaders import load_marketing_campaign
    from models_py.registry._tables import ensure_ml_tables

    settings = _settings(args)
    report = load_marketing_campaign(
        args.path, settings.warehouse, keep_duplicates=args.keep_duplicates
    )
    ensure_ml_tables(settings)
    _console().print(report.summary())
    return 0


def cmd_load_hillstrom(args: argparse.Namespace) -> int:
    from models_py.ingest.loaders import load_hillstrom
    from models_py.registry._tables import ensure_ml_tables

    settings = _settings(args)
    options = {"assigned_at": args.assigned_at} if args.assigned_at else {}
    report = load_hillstrom(args.path, settings.warehouse, **options)
    ensure_ml_tables(settings)
    _console().print(report.summary())
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from models_py._score_relation import score_relation

    result = score_relation(
        _settings(args),
        relation=args.relation,
        product_groups=args.group,
        out=args.out,
        id_columns=args.id_column or ["customer_id"],
    )
    _console().print(result.summary())
    return 0


def cmd_results(args: argparse.Namespace) -> int:
    from models_py.reporting._results import run_results

    data_dir = args.data or os.environ.get("PROPENSITY_SHARED_DATA") or _default_data_dir()
    report = run_results(
        data_dir=Path(data_dir),
        workdir=args.workdir,
        out=args.out,
        datasets=args.dataset,
        threads=_settings(args).threads,
        console=_console(),
    )
    _console().print(report.summary())
    return 0


def _default_data_dir() -> Path:
    from models_py._settings import PROJECT_ROOT

    return PROJECT_ROOT.parent / "shared" / "data"


def cmd_groups_set(args: argparse.Namespace) -> int:
    from models_py._warehouse import connect
    from models_py.ingest._groups import read_group_rules, write_group_rules

    settings = _settings(args)
    rules = read_group_rules(args.path)
    con = connect(settings.warehouse)
    try:
        n = write_group_rules(con, rules)
    finally:
        con.close()
    groups = sorted({r.product_group for r in rules})
    _console().print(f"wrote {n} rules for {len(groups)} product groups: {', '.join(groups)}")
    return 0


def cmd_campaigns_set(args: argparse.Namespace) -> int:
    from models_py.ingest._campaigns import set_campaigns

    campaigns = set_campaigns(_settings(args).warehouse, args.path)
    ids = ", ".join(c.campaign_id for c in campaigns)
    _console().print(f"wrote {len(campaigns)} campaigns: {ids}")
    return 0


def cmd_offers_set(args: argparse.Namespace) -> int:
    from models_py.offers import set_offers

    offers = set_offers(_settings(args).warehouse, args.path)
    _console().print(f"wrote {len(offers)} offers: {', '.join(offers)}")
    return 0


def cmd_experiment_design(args: argparse.Namespace) -> int:
    import datetime as dt

    from models_py._errors import WarehouseError
    from models_py._warehouse import connect
    from models_py.experiments._design import design_experiment, save_design

    settings = _settings(args)
    con = None
    if settings.warehouse.exists():
        con = connect(settings.warehouse, read_only=args.name is None)
    elif args.name:
        raise WarehouseError(
            f"--name saves the design in the warehouse, and {settings.warehouse} does not exist"
        )
    try:
        design = design_experiment(
            con,
            metric=args.metric,
            mde=args.mde,
            arms=args.arms,
            alpha=args.alpha,
            power=args.power,
            baseline_rate=args.baseline_rate,
            baseline_sd=args.baseline_sd,
            audience=args.audience,
            window_days=args.window_days,
            daily_volume=args.daily_volume,
        )
        if args.name:
            save_design(
                con, args.name, design, designed_at=dt.datetime.now().replace(microsecond=0)
            )
    finally:
        if con is not None:
            con.close()
    console = _console()
    console.print(design.summary())
    if args.name:
        console.print(
            f"saved as design {args.name!r} in raw.experiment_designs "
            "(marts.dim_experiment_designs after `propensity build`)"
        )
    return 0


def cmd_experiment_assign(args: argparse.Namespace) -> int:
    from models_py.experiments import assign_experiments

    done = assign_experiments(_settings(args), args.path, experiments=args.experiment)
    console = _console()
    for a in done:
        console.print(a.summary())
    console.print(
        "assignments are in raw.experiment_assignments; `propensity build` refreshes the "
        "experiment marts (balance at assignment, results once outcomes arrive)"
    )
    return 0


def cmd_experiment_analyse(args: argparse.Namespace) -> int:
    from models_py._warehouse import connect
    from models_py.experiments import analyse_experiment, analyse_relation

    settings = _settings(args)
    with closing(connect(settings.warehouse, read_only=True)) as con:
        if args.relation:
            if not args.metric or not args.control:
                raise ConfigError("--relation needs --metric (one or more) and --control ARM")
            analysis = analyse_relation(
                con,
                args.relation,
                metrics=args.metric,
                control=args.control,
                arm_column=args.arm_column,
                experiment_id=args.experiment_id,
                covariate=args.covariate,
                balance_columns=args.balance or (),
                alpha=args.alpha,
            )
        else:
            if not args.experiment_id:
                raise ConfigError("give the experiment id (or --relation for a table)")
            analysis = analyse_experiment(
                con, args.experiment_id, control=args.control, alpha=args.alpha, final=args.final
            )
    render_analysis(analysis, _console())
    return 2 if analysis.sample_ratio.is_mismatch else 0


def cmd_experiment_report(args: argparse.Namespace) -> int:
    from models_py.reporting._experiments_page import write_experiments_page

    result = write_experiments_page(
        _settings(args).warehouse, args.out, experiments=args.experiment
    )
    _console().print(result.summary())
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    from models_py._dbt import run_dbt

    settings = _settings(args)
    command = ["build", *(["--select", *args.select] if args.select else [])]
    outcome = run_dbt(settings, command, dbt_vars=_dbt_vars(args.vars))
    console = _console()
    console.print(
        f"dbt build: {outcome.count('success')} built, {outcome.count('pass')} tests passed, "
        f"{outcome.count('warn')} warnings"
    )
    for w in outcome.warnings:
        console.print(f"  warning: {w}")
    return 0


def cmd_run_daily(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from models_py.operations import run_daily

    settings = _settings(args)
    settings = replace(settings, dbt_vars={**settings.dbt_vars, **_dbt_vars(args.vars)})
    if _on_spark(settings):
        from models_py.spark import run_daily_on_spark

        report = run_daily_on_spark(settings, as_of=args.as_of)
        _console().print(report.summary())
        return 0

    options = {} if args.lookback_days is None else {"lookback_days": args.lookback_days}
    if args.full_refresh:
        options["lookback_days"] = None
    report = run_daily(settings, as_of=args.as_of, backfill=args.backfill, **options)
    _console().print(report.summary())
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    from models_py.serving import publish_snapshot

    report = publish_snapshot(_settings(args), keep=args.keep)
    _console().print(report.summary())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from models_py.serving import serve
    from models_py.serving._app import ServeSettings

    settings = _settings(args)
    serve(
        ServeSettings(
            serving_dir=settings.serving_path, api_key=os.environ.get("PROPENSITY_API_KEY", "")
        ),
        host=args.host,
        port=args.port,
        access_log=args.access_log,
    )
    return 0


def cmd_retrain(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from models_py.operations._retrain import retrain

    settings = _settings(args)
    settings = replace(settings, dbt_vars={**settings.dbt_vars, **_dbt_vars(args.vars)})
    report = retrain(
        settings,
        as_of=args.as_of,
        if_needed=args.if_needed,
        spec_path=args.spec,
        groups=args.group,
        jobs=args.jobs,
        actor=_actor(),
    )
    _console().print(report.summary())
    return 1 if report.failed else 0


def cmd_replay(args: argparse.Namespace) -> int:
    from models_py.operations._replay import replay_generated

    report = replay_generated(
        _settings(args),
        weeks=args.weeks,
        shift_at=args.shift_at,
        shift=args.shift,
        policies=args.policy or None,
        customers=args.customers,
        seed=args.seed,
        spec_path=args.spec,
        workdir=args.workdir,
        results=args.results,
    )
    _console().print(report.text())
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from models_py.reporting._report import write_report

    settings = _settings(args)
    if _on_spark(settings):
        from models_py.spark import pull_tables

        # The report reads the local file: the Spark marts it shows are copied there first.
        pull_tables(settings, SPARK_REPORT_TABLES)
    result = write_report(settings.warehouse, args.out)
    _console().print(result.summary())
    return 0


def cmd_offers_report(args: argparse.Namespace) -> int:
    from models_py.reporting._uplift_page import write_offers_page

    result = write_offers_page(_settings(args).warehouse, args.out)
    _console().print(result.summary())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from models_py._demo import run_demo

    settings = _settings(args)
    run_demo(
        settings,
        customers=args.customers,
        seed=args.seed,
        observable_oracle=args.observable_oracle,
        console=_console(),
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    return run_train(
        _settings(args), spec_path=args.spec, groups=args.group, jobs=args.jobs, console=_console()
    )


def cmd_uplift_train(args: argparse.Namespace) -> int:
    from rich.table import Table

    from models_py.uplift._spec import load_uplift_specs
    from models_py.uplift._train import train_and_register

    specs = load_uplift_specs(args.spec)
    if args.name:
        unknown = sorted(set(args.name) - {s.name for s in specs})
        if unknown:
            raise ConfigError(
                f"no uplift spec named {', '.join(unknown)} (specs: {[s.name for s in specs]})"
            )
        specs = [s for s in specs if s.name in args.name]
    console = _console()
    for t in train_and_register(_settings(args), specs, promote=True if args.promote else None):
        console.print(
            f"{t.spec.name}: model set {t.model_set_id} ({t.learner}, "
            f"{len(t.parts)} ONNX parts) on experiment {t.experiment_id}"
        )
        table = Table("arm", "outcome", "treated", "control", "Qini", "oracle Qini", "uplift@30%")
        for m in t.evaluation.metrics:
            table.add_row(
                m["arm"],
                m["outcome"],
                f"{m['treated']:,}",
                f"{m['control']:,}",
                _fmt(m["qini_coefficient"], 4),
                _fmt(m["oracle_qini_coefficient"], 4),
                _fmt(m["uplift_at_30"], 4),
            )
        console.print(table)
        value = t.details.get("held_out_policy_value")
        if value:
            console.print(
                "held-out value of the profit policy (no contact cost), incremental margin per "
                f"customer against no offer: {value['incremental_margin_per_customer']:+.3f} "
                f"(95% CI {value['ci_lower']:+.3f} .. {value['ci_upper']:+.3f}), offering "
                f"{value['offered_share']:.1%} of {value['rows']:,} customers"
            )
    return 0


def cmd_models_list(args: argparse.Namespace) -> int:
    return run_models_list(_settings(args), product_group=args.group, console=_console())


def cmd_models_promote(args: argparse.Namespace) -> int:
    return run_models_promote(
        _settings(args), model_id=args.model_id, reason=args.reason, console=_console()
    )


def cmd_models_rollback(args: argparse.Namespace) -> int:
    return run_models_rollback(
        _settings(args), product_group=args.product_group, reason=args.reason, console=_console()
    )


# ---------------------------------------------------------------------- terminal output


def _actor() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): still record who in a readable way
        return "propensity"


def _fmt(value: object, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def render_train_summary(report: TrainReport, console) -> None:
    from rich.table import Table

    from models_py.training._algorithms import short_name

    table = Table(title=f"training summary ({report.seconds:.0f}s)")
    # Stratified k-fold targets (tables without a time axis) also show their CV AUC mean +- std.
    with_cv = any(r.cv for r in report.results)
    # Generated warehouses with the observable oracle: the best AUC reachable from observable data
    # (docs/oracle.md), next to the hidden-state oracle.
    with_observable = any(
        r.test_metrics.get("observable_oracle_roc_auc") is not None for r in report.results
    )
    columns = ["group", "algorithm", "test AUC", "oracle AUC", "PR AUC", "lift@10%", "promoted"]
    if with_observable:
        columns.insert(3, "best achievable")
    if with_cv:
        columns.insert(3, "CV AUC")
    for col in columns:
        table.add_column(col, justify="left" if col in ("group", "algorithm") else "right")
    for r in report.results:
        m = r.test_metrics
        promoted = "yes" if r.promoted else ("no" if r.status == "registered" else r.status)
        cells = [
            r.product_group,
            short_name(r.algorithm) if r.algorithm else "-",
            _fmt(m.get("roc_auc")),
            _fmt(m.get("oracle_roc_auc")),
            _fmt(m.get("pr_auc")),
            _fmt(r.lift_top_decile, 2),
            promoted,
        ]
        if with_observable:
            cells.insert(3, _fmt(m.get("observable_oracle_roc_auc")))
        if with_cv:
            cv = r.cv
            cells.insert(3, f"{cv['roc_auc_mean']:.3f} ± {cv['roc_auc_std']:.3f}" if cv else "-")
        table.add_row(*cells)
    console.print(table)
    for r in report.results:
        if r.status == "registered":
            console.print(f"  {r.model_id}: {r.promotion_reason}")
        else:
            console.print(f"  {r.product_group} {r.status}: {r.message}", style="red")


def render_analysis(analysis, console) -> None:
    """`propensity experiment analyse`: one table per metric, the sample ratio, the verdict."""
    from rich.table import Table

    from models_py.experiments._analyse import change, level

    flags = []
    if analysis.is_interim:
        flags.append("INTERIM")
    if analysis.sample_ratio.is_mismatch:
        flags.append("SAMPLE RATIO MISMATCH")
    console.print(
        f"experiment {analysis.experiment_id} ({analysis.source}), control "
        f"{analysis.control_arm}, status {analysis.status}"
        + (f" [{', '.join(flags)}]" if flags else "")
    )
    for metric in analysis.metrics:
        rows = analysis.for_metric(metric)
        kind = rows[0].kind
        cuped = any(c.has_cuped for c in rows)
        table = Table(title=f"{metric}{' (primary)' if metric == analysis.primary_metric else ''}")
        columns = [
            "arm",
            "customers",
            "control",
            "arm mean",
            "difference",
            "95% CI",
            "lift",
            "p (Holm)",
        ]
        if cuped:
            columns += ["CUPED 95% CI", "p (Holm)", "var. reduction"]
        for col in columns:
            table.add_column(col, justify="left" if col == "arm" else "right")
        for c in rows:
            cells = [
                c.arm,
                f"{c.customers:,}",
                level(kind, c.control_mean),
                level(kind, c.mean),
                change(kind, c.difference),
                f"{change(kind, c.ci_lower)} .. {change(kind, c.ci_upper)}",
                "-" if c.relative_lift is None else f"{c.relative_lift:+.1%}",
                f"{c.p_value_holm:.3g}",
            ]
            if cuped:
                cells += [
                    f"{change(kind, c.cuped_ci_lower)} .. {change(kind, c.cuped_ci_upper)}",
                    f"{c.cuped_p_value_holm:.3g}",
                    f"{c.variance_reduction:.0%}",
                ]
            table.add_row(*cells)
        console.print(table)
    sr = analysis.sample_ratio
    counts = ", ".join(
        f"{arm} {n:,} ({n / sum(sr.counts.values()):.1%} vs {sr.expected_shares[arm]:.1%})"
        for arm, n in sr.counts.items()
    )
    console.print(
        f"sample ratio: {counts}; chi-square {sr.chi_square:.2f} (df {sr.df}), p = "
        f"{sr.p_value:.3g}: {'MISMATCH' if sr.is_mismatch else 'passes'} (flagged below p 0.001)"
    )
    for line in analysis.verdict():
        console.print(f"- {line}")


def run_train(
    settings: Settings,
    *,
    spec_path: Path | None,
    groups: Sequence[str] | None,
    console,
    jobs: int | None = None,
) -> int:
    """`propensity train`: progress bar over specs x candidates, then the summary table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from models_py.training._train import train

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("training", total=None)

        def progress(event) -> None:
            bar.update(
                task,
                total=event.total,
                completed=event.completed,
                description=f"{event.spec_name}/{event.product_group}: {event.step}",
            )

        if settings.engine == "spark":
            from models_py.spark import train_on_spark as train
        report = train(
            settings,
            spec_path=spec_path,
            groups=groups,
            progress=progress,
            actor=_actor(),
            jobs=jobs,
        )
    render_train_summary(report, console)
    return 1 if report.failed else 0


def run_models_list(settings: Settings, *, product_group: str | None, console) -> int:
    from rich.table import Table

    from models_py._warehouse import connect
    from models_py.registry import list_models

    with closing(connect(settings.warehouse, read_only=True)) as con:
        rows = list_models(con, product_group=product_group)
    table = Table(title=f"registered models ({len(rows)})")
    for col in ("model_id", "group", "algorithm", "trained_at", "aliases", "test AUC", "oracle"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["model_id"],
            r["product_group"],
            r["algorithm"],
            str(r["trained_at"]),
            r["aliases"],
            _fmt(r["roc_auc"]),
            _fmt(r["oracle_roc_auc"]),
        )
    console.print(table)
    return 0


def run_models_promote(settings: Settings, *, model_id: str, reason: str | None, console) -> int:
    from models_py._warehouse import connect
    from models_py.registry import promote_model

    with closing(connect(settings.warehouse)) as con:
        previous = promote_model(con, model_id, actor=_actor(), reason=reason or "manual promotion")
    console.print(f"{model_id} is now champion (previous: {previous or 'none'})")
    return 0


def run_models_rollback(
    settings: Settings, *, product_group: str, reason: str | None, console
) -> int:
    from models_py._warehouse import connect
    from models_py.registry import rollback_champion

    with closing(connect(settings.warehouse)) as con:
        restored = rollback_champion(
            con, product_group, actor=_actor(), reason=reason or "manual rollback"
        )
    console.print(f"{product_group}: champion is {restored} again")
    return 0


# ------------------------------------------------------------------------------------------ parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="propensity",
        description="Warehouse-native propensity scoring: dbt features, sklearn models, ONNX.",
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    parser.add_argument(
        "--engine",
        choices=("duckdb", "spark"),
        default=None,
        help="where dbt builds the tables: the DuckDB file or Spark tables (default: "
        "$PROPENSITY_ENGINE or duckdb; docs/spark.md)",
    )
    parser.add_argument(
        "--warehouse",
        type=Path,
        default=None,
        help="DuckDB file (default: $PROPENSITY_WAREHOUSE or warehouse/propensity.duckdb)",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("generate", help="write a synthetic warehouse with ground truth")
    p.add_argument("--customers", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--days", type=int, default=730, help="days of history (default 730)")
    p.add_argument(
        "--end-date",
        type=_date,
        default=None,
        help="first day after the history, dbt's default scoring cutoff (default 2026-10-01)",
    )
    p.add_argument(
        "--observable-cutoffs",
        type=int,
        default=0,
        help="also compute the observable oracle (best achievable probability, docs/oracle.md) "
        "for this many of the newest labelled cutoffs; about 2 ms per customer and cutoff",
    )
    p.add_argument(
        "--shift-at",
        type=_date,
        default=None,
        help="first day of a regime shift inside the history, YYYY-MM-DD (docs/oracle.md, "
        "'Regime shift'); everything before it is as without a shift",
    )
    p.add_argument(
        "--shift",
        default=None,
        help="kind of regime shift with --shift-at: migration (default), price_rise, price_cut, "
        "email_tracking, email_fatigue (docs/oracle.md, 'Regime shift')",
    )
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("load", help="load a public dataset into the raw contract")
    load_sub = p.add_subparsers(dest="dataset", required=True)
    q = load_sub.add_parser("online-retail", help="UCI Online Retail / Online Retail II")
    q.add_argument("path", type=Path, help="CSV, XLSX or parquet file")
    q.set_defaults(func=cmd_load_online_retail)
    q = load_sub.add_parser(
        "marketing-campaign",
        help="Kaggle Customer Personality Analysis into datasets.marketing_campaign",
    )
    q.add_argument("path", type=Path, help="marketing_campaign.csv (tab separated) or parquet")
    q.add_argument(
        "--keep-duplicates",
        action="store_true",
        help="keep the rows that repeat another in every column but ID (dropped by default)",
    )
    q.set_defaults(func=cmd_load_marketing_campaign)
    q = load_sub.add_parser(
        "hillstrom", help="Hillstrom e-mail experiment: customers, treatments, outcomes"
    )
    q.add_argument("path", type=Path, help="CSV or parquet with the original column names")
    q.add_argument(
        "--assigned-at",
        type=_timestamp,
        default=None,
        help="assignment date written to raw.treatments (default 2008-03-01)",
    )
    q.set_defaults(func=cmd_load_hillstrom)

    p = sub.add_parser("groups", help="product-group configuration")
    groups_sub = p.add_subparsers(dest="action", required=True)
    q = groups_sub.add_parser("set", help="replace the warehouse's product-group rules from YAML")
    q.add_argument("path", type=Path)
    q.set_defaults(func=cmd_groups_set)

    p = sub.add_parser("campaigns", help="campaign configuration (audiences)")
    campaigns_sub = p.add_subparsers(dest="action", required=True)
    q = campaigns_sub.add_parser("set", help="replace the warehouse's campaigns from YAML")
    q.add_argument("path", type=Path)
    q.set_defaults(func=cmd_campaigns_set)

    p = sub.add_parser("offers", help="offer configuration and assignments (docs/uplift.md)")
    offers_sub = p.add_subparsers(dest="offers_command", required=True)
    q = offers_sub.add_parser("set", help="replace the warehouse's offers from YAML")
    q.add_argument("path", type=Path)
    q.set_defaults(func=cmd_offers_set)
    q = offers_sub.add_parser(
        "report", help="write the uplift and offers page (offers.html) from warehouse tables"
    )
    q.add_argument("--out", type=Path, default=Path("report"), help="output directory")
    q.set_defaults(func=cmd_offers_report)

    p = sub.add_parser("build", help="dbt build (features, marts, tests) with readable failures")
    p.add_argument("--select", nargs="*", default=None)
    p.add_argument("--vars", default=None, help="dbt vars as YAML, e.g. '{horizon_days: 60}'")
    p.set_defaults(func=cmd_build)

    p = sub.add_parser("run", help="a scheduled workflow (docs/operations.md)")
    run_sub = p.add_subparsers(dest="workflow", required=True)
    q = run_sub.add_parser(
        "daily",
        help="score the new scoring cutoff with the champions (dbt build --selector daily)",
    )
    q.add_argument(
        "--as-of",
        type=_date,
        default=None,
        help="scoring cutoff ('now'; features use events before it), YYYY-MM-DD "
        "(default: the day after the last order)",
    )
    q.add_argument(
        "--backfill",
        action="store_true",
        help="allow a cutoff earlier than the newest scored one (replaces its scores)",
    )
    q.add_argument(
        "--lookback-days",
        type=_non_negative_int,
        default=None,
        help="the intermediate tables recompute the orders from this many days before their "
        "newest order date (late or corrected orders; default 7)",
    )
    q.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the intermediate tables from all history (after corrections of older "
        "orders); feature and score history are kept",
    )
    q.add_argument(
        "--vars",
        default=None,
        help="more dbt vars as YAML, e.g. '{score_reasons_max_decile: 2}' (the run's own "
        "cutoff vars win)",
    )
    q.set_defaults(func=cmd_run_daily)

    p = sub.add_parser(
        "snapshot",
        help="publish the serving snapshot of the latest scores now (run daily does it itself)",
    )
    p.add_argument("--keep", type=_positive_int, default=3, help="snapshot files kept (default 3)")
    p.set_defaults(func=cmd_snapshot)

    p = sub.add_parser(
        "serve",
        help="the score lookup service over the newest serving snapshot (docs/serving.md); "
        "needs PROPENSITY_API_KEY",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser(
        "retrain",
        help="rebuild the training set for 'now' and retrain (every group, or --if-needed)",
    )
    p.add_argument(
        "--if-needed",
        action="store_true",
        help="retrain only groups whose champion is old, lost ROC AUC or drifted (spec rules)",
    )
    p.add_argument(
        "--as-of",
        type=_date,
        default=None,
        help="'now', YYYY-MM-DD: training cutoffs are those whose labels matured before it "
        "(default: the day after the last order)",
    )
    p.add_argument("--spec", type=Path, default=None, help="spec YAML (default: packaged specs)")
    p.add_argument("--group", action="append", default=None, help="only this product group")
    p.add_argument("--jobs", type=_positive_int, default=None, help="groups fitted at once")
    p.add_argument("--vars", default=None, help="dbt vars as YAML, e.g. '{horizon_days: 60}'")
    p.set_defaults(func=cmd_retrain)

    p = sub.add_parser(
        "replay",
        help="run the daily and weekly jobs step by step over a generated history, per policy",
    )
    p.add_argument("--weeks", type=_positive_int, default=26, help="weekly steps (default 26)")
    p.add_argument("--shift-at", type=_date, default=None, help="regime shift date, YYYY-MM-DD")
    p.add_argument("--shift", default=None, help="kind of regime shift (docs/oracle.md)")
    p.add_argument(
        "--policy",
        action="append",
        choices=("never", "weekly", "if-needed"),
        default=None,
        help="retraining policy to replay (repeatable; default all three)",
    )
    p.add_argument("--customers", type=_positive_int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--spec", type=Path, default=None, help="spec YAML (default: the lean replay spec)"
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path("replay"),
        help="warehouses per policy (default replay/)",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=None,
        help="DuckDB file for the timeline (default: <workdir>/results.duckdb)",
    )
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser(
        "score", help="score a table in the warehouse with champion models (bring your own)"
    )
    p.add_argument("group", nargs="+", help="product group(s) / model target(s) to score with")
    p.add_argument("--relation", required=True, help="schema.table holding the feature columns")
    p.add_argument("--out", default=None, help="schema.table written (default <relation>_scores)")
    p.add_argument(
        "--id-column", action="append", default=None, help="id column(s) (default customer_id)"
    )
    p.set_defaults(func=cmd_score)

    p = sub.add_parser(
        "results", help="run the three public datasets end to end and write docs/results.md"
    )
    p.add_argument(
        "--data",
        type=Path,
        default=None,
        help="folder with online_retail.parquet, marketing_campaign.csv, hillstrom.parquet "
        "(default $PROPENSITY_SHARED_DATA or ../shared/data beside the project)",
    )
    p.add_argument("--out", type=Path, default=Path("docs/results.md"))
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path("warehouse/results"),
        help="where the three warehouses are (re)built",
    )
    p.add_argument(
        "--dataset",
        action="append",
        default=None,
        choices=["online_retail", "marketing_campaign", "hillstrom"],
        help="only this dataset (repeatable; default all three)",
    )
    p.set_defaults(func=cmd_results)

    p = sub.add_parser("report", help="write a static HTML report from warehouse tables")
    p.add_argument("--out", type=Path, default=Path("report"), help="output directory")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("demo", help="generate a demo warehouse and run the whole pipeline")
    p.add_argument("--customers", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--observable-oracle",
        action="store_true",
        help="also compute the best AUC reachable from observable data at the test cutoff "
        "(docs/oracle.md; about 2 ms per customer)",
    )
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train, evaluate, export and register models from specs")
    p.add_argument("--spec", type=Path, default=None, help="spec YAML (default: packaged specs)")
    p.add_argument("--group", action="append", default=None, help="only this product group")
    p.add_argument(
        "--jobs",
        type=_positive_int,
        default=None,
        help="product groups fitted at once (default: the warehouse threads, 2)",
    )
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("uplift", help="uplift (CATE) models from experiments (docs/uplift.md)")
    uplift_sub = p.add_subparsers(dest="uplift_command", required=True)
    q = uplift_sub.add_parser(
        "train", help="train, evaluate, export and register uplift model sets from specs"
    )
    q.add_argument("--spec", type=Path, default=None, help="uplift spec YAML (default: packaged)")
    q.add_argument("--name", action="append", default=None, help="only this spec")
    q.add_argument(
        "--promote",
        action="store_true",
        help="make the new set the champion of its offer family (default: only the first one)",
    )
    q.set_defaults(func=cmd_uplift_train)

    p = sub.add_parser(
        "experiment", help="design, assign and analyse experiments (docs/experiments.md)"
    )
    experiment_sub = p.add_subparsers(dest="experiment_command", required=True)
    q = experiment_sub.add_parser(
        "design", help="customers per arm and duration for a minimum detectable effect"
    )
    q.add_argument("--metric", choices=("conversion", "revenue"), default="conversion")
    q.add_argument(
        "--mde",
        type=float,
        required=True,
        help="minimum detectable effect, absolute: a rate difference (0.01 = 1 point) or "
        "revenue per customer",
    )
    q.add_argument(
        "--baseline-rate",
        type=float,
        default=None,
        help="control conversion rate (default: observed in the warehouse)",
    )
    q.add_argument(
        "--baseline-sd",
        type=float,
        default=None,
        help="revenue per customer's standard deviation (default: observed in the warehouse)",
    )
    q.add_argument("--arms", type=_positive_int, default=2, help="arms including the control")
    q.add_argument("--power", type=float, default=0.8)
    q.add_argument("--alpha", type=float, default=0.05, help="split over the arms - 1 comparisons")
    q.add_argument("--audience", default=None, help="campaign id: its audience's size and inflow")
    q.add_argument("--window-days", type=_positive_int, default=30, help="outcome window")
    q.add_argument("--daily-volume", type=float, default=None, help="new customers per day")
    q.add_argument("--name", default=None, help="save as this design in raw.experiment_designs")
    q.set_defaults(func=cmd_experiment_design)
    q = experiment_sub.add_parser(
        "assign", help="assign (or record) the experiments of experiments.yml, atomically"
    )
    q.add_argument("path", type=Path)
    q.add_argument("--experiment", action="append", default=None, help="only this experiment")
    q.set_defaults(func=cmd_experiment_assign)
    q = experiment_sub.add_parser(
        "analyse",
        aliases=["analyze"],
        help="each arm against the control: lifts, intervals, Holm p-values, SRM, CUPED, verdict",
    )
    q.add_argument("experiment_id", nargs="?", default=None)
    q.add_argument("--control", default=None, help="compare against this arm")
    q.add_argument("--alpha", type=float, default=0.05)
    q.add_argument(
        "--final", action="store_true", help="refuse while the outcome window is still open"
    )
    q.add_argument(
        "--relation", default=None, help="analyse a table with one row per customer instead"
    )
    q.add_argument("--metric", action="append", default=None, help="--relation: outcome column")
    q.add_argument("--covariate", default=None, help="--relation: pre-period column for CUPED")
    q.add_argument("--arm-column", default="arm", help="--relation: the arm column")
    q.add_argument(
        "--balance", action="append", default=None, help="--relation: pre-assignment column"
    )
    q.set_defaults(func=cmd_experiment_analyse)
    q = experiment_sub.add_parser("report", help="write the experiments page (experiments.html)")
    q.add_argument("--out", type=Path, default=Path("report"), help="output directory")
    q.add_argument("--experiment", action="append", default=None, help="only this experiment")
    q.set_defaults(func=cmd_experiment_report)

    p = sub.add_parser("models", help="the model registry: list, promote, rollback")
    models_sub = p.add_subparsers(dest="action", required=True)
    q = models_sub.add_parser("list", help="registered models with aliases and test metrics")
    q.add_argument("--group", default=None, help="only this product group")
    q.set_defaults(func=cmd_models_list)
    q = models_sub.add_parser("promote", help="make a model the champion of its product group")
    q.add_argument("model_id")
    q.add_argument("--reason", default=None)
    q.set_defaults(func=cmd_models_promote)
    q = models_sub.add_parser("rollback", help="put the previous champion of a group back")
    q.add_argument("product_group")
    q.add_argument("--reason", default=None)
    q.set_defaults(func=cmd_models_rollback)
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a whole number >= 0: {text!r}")
    return value


def _date(text: str):
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def _timestamp(text: str):
    import datetime as dt

    try:
        return dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.INFO,
        format="%(message)s",
        handlers=[_rich_handler()],
    )
    started = time.perf_counter()
    try:
        _refuse_on_spark(args)
        code = args.func(args)
    except Exception as exc:
        if args.debug or not is_known_error(exc):
            raise
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    logger.debug("done in %.1fs", time.perf_counter() - started)
    return code


def _refuse_on_spark(args: argparse.Namespace) -> None:
    """The Spark engine runs a subset of the commands (docs/spark.md): any other one stops with
    a `ConfigError` rather than running on the DuckDB file while the user expects Spark."""
    engine = args.engine or os.environ.get("PROPENSITY_ENGINE", "duckdb").strip().lower()
    if engine != "spark":
        return
    label = " ".join(
        str(v)
        for v in (args.command, getattr(args, "workflow", None), getattr(args, "dataset", None))
        if v
    )
    if label not in ("generate", "load online-retail", "build", "train", "run daily", "report"):
        raise ConfigError(
            f"`propensity {label}` does not run on the Spark engine yet; on Spark: "
            f"{_SPARK_COMMANDS} (docs/spark.md). Use --engine duckdb."
        )


def _rich_handler() -> logging.Handler:
    from rich.logging import RichHandler

    return RichHandler(show_path=False, show_time=False, markup=False)


if __name__ == "__main__":
    sys.exit(main())
