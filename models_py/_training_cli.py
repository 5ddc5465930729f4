"""Terminal rendering for `propensity train` and `propensity models ...` (Rich progress bar and
tables). The CLI commands call these; the training and registry logic stays in the library."""

from __future__ import annotations

import getpass
import logging
from collections.abc import Sequence
from contextlib import closing
from pathlib import Path

from models_py._settings import Settings
from models_py._warehouse import connect
from models_py.registry import list_models, promote_model, rollback_champion
from models_py.training._algorithms import short_name
from models_py.training._train import TrainProgress, TrainReport, train

logger = logging.getLogger(__name__)


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


def run_train(
    settings: Settings,
    *,
    spec_path: Path | None,
    groups: Sequence[str] | None,
    console,
) -> int:
    """`propensity train`: progress bar over specs x candidates, then the summary table."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task("training", total=None)

        def progress(event: TrainProgress) -> None:
            bar.update(
                task,
                total=event.total,
                completed=event.completed,
                description=f"{event.spec_name}/{event.product_group}: {event.step}",
            )

        report = train(
            settings, spec_path=spec_path, groups=groups, progress=progress, actor=_actor()
        )
    render_train_summary(report, console)
    return 1 if report.failed else 0


def run_models_list(settings: Settings, *, product_group: str | None, console) -> int:
    from rich.table import Table

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
    with closing(connect(settings.warehouse)) as con:
        previous = promote_model(con, model_id, actor=_actor(), reason=reason or "manual promotion")
    console.print(f"{model_id} is now champion (previous: {previous or 'none'})")
    return 0


def run_models_rollback(
    settings: Settings, *, product_group: str, reason: str | None, console
) -> int:
    with closing(connect(settings.warehouse)) as con:
        restored = rollback_champion(
            con, product_group, actor=_actor(), reason=reason or "manual rollback"
        )
    console.print(f"{product_group}: champion is {restored} again")
    return 0
