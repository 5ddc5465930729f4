"""Model specs: what to train, on which table, with which candidates, as YAML.

A spec names a training relation (``schema.table``) holding one row per example with id columns,
a 0/1 label, numeric features and, for ``validation: temporal``, a cutoff date. Tables without a
time axis (one row per customer) use ``validation: stratified_kfold`` instead. Users add specs
for any such table without writing Python; `load_specs` validates the YAML and `resolve_spec`
checks it against the warehouse (table, columns, types) and expands the product groups to train.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from models_py._errors import ConfigError
from models_py._warehouse import qualified, quote_ident, relation_columns, relation_exists
from models_py._yaml import read_yaml_file
from models_py.training._spec_schema import (
    NAME_PATTERN,
    PrecisionAt,
    PromotionSchema,
    SearchSchema,
    SpecSchema,
    describe_errors,
)
from scoring._types import is_feature_type

logger = logging.getLogger(__name__)

SPECS_DIR = Path(__file__).resolve().parent / "specs"
DEFAULT_SPEC_PATH = SPECS_DIR / "default.yml"

_NAME = re.compile(NAME_PATTERN)
#: The weight column of a training set sampled in SQL (marts.fct_training_examples).
SAMPLE_WEIGHT = "sample_weight"


@dataclass(frozen=True, kw_only=True)
class ThresholdRule:
    """How the decision threshold is chosen on the validation period.

    ``max_f1``: the threshold maximising F1. ``precision_at``: the lowest threshold whose
    precision reaches `value` (the most recall at that precision).
    """

    kind: str
    value: float | None = None

    def describe(self) -> str:
        return self.kind if self.value is None else f"{self.kind}:{self.value:g}"


@dataclass(frozen=True, kw_only=True)
class OracleSpec:
    """Optional table of true probabilities (generated warehouses) joined on the spec's keys."""

    relation: str
    probability: str = "probability"
    #: Optional column with the observable oracle (the best probability reachable from the
    #: observable history, docs/oracle.md); NULL rows are ignored.
    observable_probability: str | None = None


@dataclass(frozen=True, kw_only=True)
class RetrainingRules:
    """When `propensity retrain --if-needed` retrains a group: the champion is older than
    `max_age_days`; its ROC AUC (realised, else estimated) is below its test ROC AUC by more than
    `auc_drop`; the score drifts (`score_drift`) or at least `drift_min_alerts` of its
    `drift_top_features` most important features drift ('alert'). Never within
    `min_days_between` days of the group's last retrain."""

    max_age_days: int = 90
    auc_drop: float = 0.02
    drift_top_features: int = 10
    drift_min_alerts: int = 1
    score_drift: bool = True
    min_days_between: int = 7


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """One validated model spec (see docs/training.md for every field)."""

    name: str
    relation: str
    id_columns: tuple[str, ...]
    label: str
    cutoff: str | None
    split: str | None = None
    #: Column of sampling weights (rows of the population a row stands for), e.g. the
    #: sample_weight of marts.fct_training_examples; None: every row stands for itself.
    weight: str | None = None
    test_cutoffs: int = 1
    validation_cutoffs: int = 1
    group_column: str | None = None
    groups: str | tuple[str, ...] | None = None
    features: tuple[str, ...] | None = None
    numeric_except: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    validation: str = "temporal"
    test_share: float = 0.2
    search_folds: int = 2
    search_max_rows: int = 20_000
    candidates: Mapping[str, Mapping[str, tuple[Any, ...]]] = field(default_factory=dict)
    #: Ensembles over the fitted candidates, chosen only when their validation ROC AUC beats the
    #: best candidate's by `promotion_margin` (models_py.training._ensembles).
    ensembles: tuple[str, ...] = ()
    calibration: str = "sigmoid"
    threshold: ThresholdRule = field(default_factory=lambda: ThresholdRule(kind="max_f1"))
    promotion_metric: str = "roc_auc"
    promotion_margin: float = 0.0
    retraining: RetrainingRules = field(default_factory=RetrainingRules)
    max_training_rows: int = 100_000
    #: Temporal specs: positives take at most this share of each train cutoff's quota (all of
    #: them when fewer), negatives fill the rest, and weights restore each cutoff's label rate.
    #: None: a uniform sample per cutoff (unit weights).
    max_positive_share: float | None = None
    max_evaluation_rows: int = 100_000
    importance_rows: int = 2_000
    oracle: OracleSpec | None = None
    random_state: int = 0

    @property
    def is_temporal(self) -> bool:
        return self.validation == "temporal"

    def protocol(self) -> str:
        """How rows are split, as stored in the registry: the cutoffs, or the k-fold protocol."""
        if self.is_temporal:
            return "temporal"
        return f"stratified_kfold k={self.search_folds} test_share={self.test_share:g}"

    @property
    def schema_name(self) -> str:
        return self.relation.split(".")[0]

    @property
    def table_name(self) -> str:
        return self.relation.split(".")[1]

    @property
    def key_columns(self) -> tuple[str, ...]:
        """Columns never used as features: ids, label, cutoff, split, weight, group."""
        cols = [*self.id_columns, self.label]
        cols += [c for c in (self.cutoff, self.split, self.weight, self.group_column) if c]
        return tuple(cols)


@dataclass(frozen=True, kw_only=True)
class TrainingTarget:
    """A spec resolved against the warehouse for one product group (or the whole table)."""

    spec: ModelSpec
    product_group: str
    group_value: Any
    feature_names: tuple[str, ...]
    categorical: tuple[str, ...]
    oracle_available: bool = False
    observable_oracle_available: bool = False


# ------------------------------------------------------------------------------------- parsing


def _fail(spec_name: str, message: str) -> ConfigError:
    return ConfigError(f"model spec {spec_name!r}: {message}")


def parse_spec(raw: Mapping[str, Any]) -> ModelSpec:
    """Validate one spec mapping (as read from YAML) into a `ModelSpec` (schema: `SpecSchema`).

    Raises
    ------
    ConfigError
        Naming the spec and every offending field.
    """
    from models_py.training._candidates import validate_candidate

    if not isinstance(raw, Mapping):
        raise ConfigError(f"a model spec must be a mapping, got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"model spec name {name!r} is not allowed: use lowercase letters, digits and "
            "underscores, starting with a letter"
        )
    try:
        s = SpecSchema.model_validate(dict(raw))
    except ValidationError as exc:
        raise _fail(name, "; ".join(describe_errors(exc))) from None
    for algo, grid in s.candidates.items():
        validate_candidate(algo, grid, spec_name=name)
    features = s.features if isinstance(s.features, list) else None
    numeric_except = () if features is not None else tuple(s.features.numeric_except or ())
    threshold = (
        ThresholdRule(kind="precision_at", value=float(s.threshold.precision_at))
        if isinstance(s.threshold, PrecisionAt)
        else ThresholdRule(kind="max_f1")
    )
    promotion = s.promotion or PromotionSchema()
    search = s.search or SearchSchema()
    return ModelSpec(
        name=name,
        relation=s.relation,
        id_columns=tuple(s.id_columns),
        label=s.label,
        cutoff=s.cutoff,
        split=s.split,
        weight=s.weight,
        test_cutoffs=s.test_cutoffs,
        validation_cutoffs=s.validation_cutoffs,
        group_column=s.group.column if s.group else None,
        groups=s.group_values,
        features=tuple(features) if features is not None else None,
        numeric_except=numeric_except,
        categorical=tuple(s.categorical or ()),
        validation=s.validation,
        test_share=float(s.test_share),
        search_folds=s.search_folds,
        search_max_rows=search.max_rows,
        candidates=s.candidates,
        ensembles=tuple(dict.fromkeys(s.ensembles)),
        calibration=s.calibration,
        threshold=threshold,
        promotion_metric=promotion.metric,
        promotion_margin=float(promotion.margin),
        retraining=RetrainingRules(**(s.retraining.model_dump() if s.retraining else {})),
        max_training_rows=s.max_training_rows,
        max_positive_share=s.max_positive_share,
        max_evaluation_rows=s.max_evaluation_rows,
        importance_rows=s.importance_rows,
        oracle=(
            OracleSpec(
                relation=s.oracle.relation,
                probability=s.oracle.probability,
                observable_probability=s.oracle.observable_probability,
            )
            if s.oracle
            else None
        ),
        random_state=s.random_state,
    )


def parse_specs(config: Any) -> list[ModelSpec]:
    """Validate a parsed YAML document: ``{specs: [spec, ...]}`` or a single spec mapping."""
    if isinstance(config, Mapping) and "specs" in config:
        items = config["specs"]
    elif isinstance(config, Mapping) and "name" in config:
        items = [config]
    else:
        raise ConfigError("a spec file must hold `specs:` with a list of model specs")
    if not isinstance(items, list) or not items:
        raise ConfigError("`specs:` must be a non-empty list of model specs")
    specs = [parse_spec(item) for item in items]
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"model spec name(s) used twice: {', '.join(dupes)}")
    return specs


def load_specs(path: Path | str | None = None) -> list[ModelSpec]:
    """Read and validate a spec YAML file (default: the packaged ``specs/default.yml``)."""
    path = Path(path) if path is not None else DEFAULT_SPEC_PATH
    config = read_yaml_file(path, what="model spec file")
    try:
        return parse_specs(config)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


# ---------------------------------------------------------------------------- against the warehouse


def resolve_spec(
    con, spec: ModelSpec, *, only_groups: Sequence[str] | None = None
) -> list[TrainingTarget]:
    """Check a spec against the warehouse and expand it into one target per product group.

    Raises
    ------
    ConfigError
        When the relation, a named column or a group is missing, or a feature is not numeric.
    """
    if not relation_exists(con, spec.relation):
        raise _fail(
            spec.name,
            f"training relation {spec.relation} does not exist in the warehouse; build it with "
            "`propensity build` (dbt build) or fix `relation`",
        )
    columns = relation_columns(con, spec.relation)
    for what, col in [
        *[("id column", c) for c in spec.id_columns],
        ("label column", spec.label),
        ("cutoff column", spec.cutoff),
        ("split column", spec.split),
        ("weight column", spec.weight),
        ("group column", spec.group_column),
        *[("numeric_except column", c) for c in spec.numeric_except],
        *[("feature", c) for c in spec.features or ()],
        *[("categorical column", c) for c in spec.categorical],
    ]:
        if col is not None and col not in columns:
            raise _fail(spec.name, f"{what} {col!r} is not a column of {spec.relation}")
    if spec.weight is not None and not is_feature_type(columns[spec.weight]):
        raise _fail(spec.name, f"weight column {spec.weight!r} is not numeric")
    if spec.weight is None and SAMPLE_WEIGHT in columns:
        # A sampled table's weights differ by label (positives are sampled at another rate): as
        # a feature the weight would give the label away.
        raise _fail(
            spec.name,
            f"{spec.relation} has a {SAMPLE_WEIGHT} column (a sampled training set): declare "
            f"`weight: {SAMPLE_WEIGHT}` so that rows are weighted by it, not fitted on it",
        )
    if spec.features is not None:
        features = list(spec.features)
        bad = [f"{c} ({columns[c]})" for c in features if not is_feature_type(columns[c])]
        if bad:
            raise _fail(
                spec.name,
                f"feature(s) {', '.join(bad)} are not numeric; cast or integer-code them in SQL",
            )
    else:
        excluded = set(spec.key_columns) | set(spec.numeric_except)
        features = [c for c, t in columns.items() if c not in excluded and is_feature_type(t)]
        skipped = [c for c, t in columns.items() if c not in excluded and not is_feature_type(t)]
        if skipped:
            logger.info("spec %s: non-numeric columns not used: %s", spec.name, ", ".join(skipped))
    for c in spec.categorical:
        if c not in features:
            raise _fail(spec.name, f"categorical column {c!r} is excluded from the features")
    if not features:
        raise _fail(spec.name, f"no numeric feature columns in {spec.relation}")

    oracle_available = observable_oracle_available = False
    if spec.oracle is not None and relation_exists(con, spec.oracle.relation):
        ocols = relation_columns(con, spec.oracle.relation)
        keys = [*spec.id_columns, spec.cutoff, spec.group_column]
        needed = [c for c in keys if c] + [spec.oracle.probability]
        oracle_available = all(c in ocols for c in needed)
        if not oracle_available:
            logger.warning(
                "spec %s: oracle %s lacks one of %s; oracle AUC not reported",
                spec.name,
                spec.oracle.relation,
                needed,
            )
        observable = spec.oracle.observable_probability
        observable_oracle_available = oracle_available and observable in ocols
        if oracle_available and observable is not None and observable not in ocols:
            logger.warning(
                "spec %s: oracle %s has no column %s (generate with --observable-cutoffs); "
                "observable oracle AUC not reported",
                spec.name,
                spec.oracle.relation,
                observable,
            )

    def target(group: Any) -> TrainingTarget:
        return TrainingTarget(
            spec=spec,
            product_group=str(group) if group is not None else spec.name,
            group_value=group,
            feature_names=tuple(features),
            categorical=tuple(spec.categorical),
            oracle_available=oracle_available,
            observable_oracle_available=observable_oracle_available,
        )

    if spec.group_column is None:
        return [target(None)]
    group_sql = (
        f"select distinct {quote_ident(spec.group_column)} "
        f"from {qualified(spec.schema_name, spec.table_name)}"
    )
    present = {r[0] for r in con.execute(group_sql).fetchall()}
    if None in present:
        logger.warning("spec %s: rows with a null %s are not trained", spec.name, spec.group_column)
        present.discard(None)
    if spec.groups == "all":
        groups = sorted(present, key=str)
        if not groups:
            raise _fail(spec.name, f"{spec.relation} has no rows with a {spec.group_column}")
    elif spec.groups == "all_active":
        if not relation_exists(con, "marts.dim_product_groups"):
            raise _fail(
                spec.name,
                "groups: all_active needs marts.dim_product_groups; run `propensity build` first "
                "or list the groups explicitly",
            )
        active = [
            r[0]
            for r in con.execute(
                "select product_group from marts.dim_product_groups where is_active "
                "order by product_group"
            ).fetchall()
        ]
        groups = [g for g in active if g in present]
        absent = [g for g in active if g not in present]
        if absent:
            logger.warning(
                "spec %s: active groups without training examples skipped: %s",
                spec.name,
                ", ".join(absent),
            )
    else:
        # Values are matched as text, so `groups: [1, 2]` and `["1", "2"]` both select an
        # integer-coded arm column.
        by_text = {str(v): v for v in present}
        groups = [by_text.get(g, g) for g in spec.groups or ()]
        missing = [g for g in groups if g not in present]
        if missing:
            raise _fail(
                spec.name,
                f"product group(s) {', '.join(missing)} have no rows in {spec.relation}",
            )
    if only_groups:
        names = [str(g) for g in groups]
        unknown = [g for g in only_groups if g not in names]
        if unknown:
            raise _fail(
                spec.name,
                f"--group {', '.join(unknown)} is not among the spec's groups "
                f"({', '.join(names) or 'none'})",
            )
        groups = [g for g in groups if str(g) in only_groups]
    return [target(g) for g in groups]
