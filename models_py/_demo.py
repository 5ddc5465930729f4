"""`propensity demo`: the whole pipeline on a generated warehouse, with a printed summary.

generate -> dbt build (features, marts, tests) -> train (ONNX champions in the registry) ->
uplift train on the discount experiment and the packaged offers -> dbt build of the scores, uplift
scores, offer assignments and the marts on top of them (onnxruntime inside the warehouse) ->
report.
"""

from __future__ import annotations

import time
from pathlib import Path

from models_py._dbt import run_dbt
from models_py._errors import InputDataError, PropensityError
from models_py._settings import Settings
from models_py._warehouse import connect
from models_py.registry._tables import SCHEMA as REGISTRY_SCHEMA

STEPS = 6


class _Steps:
    """Prints each step's header and keeps its wall time for the closing line."""

    def __init__(self, console) -> None:
        self.console = console
        self.seconds: list[tuple[str, float]] = []
        self._started: float | None = None

    def start(self, step: int, title: str, short: str) -> None:
        self.stop()
        self.console.rule(f"{step}/{STEPS} {title}")
        self._name, self._started = short, time.perf_counter()

    def stop(self) -> None:
        if self._started is not None:
            self.seconds.append((self._name, time.perf_counter() - self._started))
            self._started = None

    def summary(self) -> str:
        return ", ".join(f"{name} {s:.0f}s" for name, s in self.seconds)


def run_demo(
    settings: Settings,
    *,
    customers: int,
    seed: int,
    observable_oracle: bool = False,
    console,
    report_dir: Path | str = "report",
) -> None:
    """Generate a warehouse and run every step of the pipeline on it, printing what was built.

    With `observable_oracle`, the generator also computes the observable oracle at the test
    cutoff, so the training summary and the report show the best AUC any model can reach
    (docs/oracle.md); it costs about 2 ms per customer, so it is off by default.
    """
    from models_py.cli import run_train
    from models_py.ingest.synth import generate_warehouse
    from models_py.reporting._report import write_report

    started = time.perf_counter()
    steps = _Steps(console)
    steps.start(1, "generate a synthetic warehouse", "generate")
    report = generate_warehouse(
        settings.warehouse,
        customers=customers,
        seed=seed,
        observable_cutoffs=1 if observable_oracle else 0,
    )
    _set_default_campaigns(settings)
    console.print(report.summary())

    steps.start(
        2, "dbt build: staging, point-in-time features, training examples, tests", "features"
    )
    # Not what step 5 builds again once models exist: scores, uplift scores, offers, ml marts.
    outcome = run_dbt(
        settings,
        [
            "build",
            "--exclude",
            "fct_propensity_scores+",
            "fct_uplift_scores+",
            "path:models/marts/ml",
        ],
    )
    console.print(
        f"{outcome.count('success')} models built, {outcome.count('pass')} tests passed, "
        f"{outcome.count('warn')} warnings"
    )

    steps.start(3, "train, calibrate, evaluate, export to ONNX, register champions", "train")
    if run_train(settings, spec_path=None, groups=None, console=console) != 0:
        raise PropensityError("training failed for at least one product group (see above)")

    steps.start(4, "uplift: the discount experiment's effect per arm, offers by profit", "uplift")
    _train_uplift(settings, console)

    steps.start(
        5, "dbt build: in-warehouse scoring with onnxruntime, profile, audiences", "scoring"
    )
    outcome = run_dbt(
        settings,
        [
            "build",
            "--select",
            "fct_propensity_scores+",
            "fct_uplift_scores+",
            "path:models/marts/ml",
        ],
    )
    console.print(
        f"{outcome.count('success')} models built, {outcome.count('pass')} tests passed, "
        f"{outcome.count('warn')} warnings"
    )

    steps.start(6, "HTML report from warehouse tables", "report")
    result = write_report(settings.warehouse, report_dir)
    console.print(result.summary())
    steps.stop()

    _print_summary(settings, console)
    console.print(
        f"\nwarehouse: {settings.warehouse}\nreport:    {result.path.resolve()}\n"
        f"done in {time.perf_counter() - started:.0f}s ({steps.summary()}). Explore the "
        "warehouse with DuckDB "
        f"(e.g. `duckdb {settings.warehouse}`), or BI on marts.*"
    )


def _train_uplift(settings: Settings, console) -> None:
    """Train the packaged uplift spec on the generated discount experiment and write the
    packaged offers (models_py/offers/default.yml), which dbt turns into assignments."""
    from models_py.offers import set_offers
    from models_py.offers._config import DEFAULT_OFFERS
    from models_py.uplift._spec import load_uplift_specs
    from models_py.uplift._train import train_and_register

    try:
        trained = train_and_register(settings, load_uplift_specs())
    except InputDataError as exc:  # a small demo: too few experiment customers per arm
        console.print(f"uplift skipped: {exc}")
        return
    for t in trained:
        qini = ", ".join(
            f"{m['arm']} {m['qini_coefficient']:.3f}"
            for m in t.evaluation.metrics
            if m["outcome"] == t.spec.purchase
        )
        console.print(
            f"{t.spec.name}: {t.learner} on experiment {t.experiment_id}, held-out Qini per "
            f"arm {qini}; {len(t.parts)} ONNX parts registered as model set {t.model_set_id}"
        )
    offers = set_offers(settings.warehouse, DEFAULT_OFFERS)
    console.print(f"offers: {', '.join(offers)}")


def _set_default_campaigns(settings: Settings) -> None:
    """Write the packaged demo campaigns (one per synthetic product group)."""
    from models_py.ingest._campaigns import DEFAULT_CAMPAIGNS, set_campaigns

    set_campaigns(settings.warehouse, DEFAULT_CAMPAIGNS)


def _print_summary(settings: Settings, console) -> None:
    con = connect(settings.warehouse, read_only=True)
    try:
        tables = con.execute(
            "select schema_name, table_name, estimated_size from duckdb_tables() "
            "where schema_name in ('raw', 'marts', ?) order by schema_name, table_name",
            [REGISTRY_SCHEMA],
        ).fetchall()
        scores = con.execute(
            "select product_group, count(*), round(avg(score), 4) from marts.fct_propensity_scores "
            "where as_of_date = (select max(as_of_date) from marts.fct_propensity_scores) "
            "group by product_group order by product_group"
        ).fetchall()
    finally:
        con.close()
    console.rule("summary")
    for schema, table, n in tables:
        console.print(f"  {schema}.{table:<34} {n:>12,} rows")
    console.print("scores at the scoring cutoff (customers, mean score) per product group:")
    for group, n, mean in scores:
        console.print(f"  {group:<20} {n:>10,} {mean:>8}")
