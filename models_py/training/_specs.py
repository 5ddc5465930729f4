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

from models_py._errors import ConfigError
from models_py._warehouse import qualified, quote_ident, relation_columns, relation_exists
from models_py._yaml import read_yaml_file
from models_py.training._algorithms import ALGORITHM_NAMES as ALGORITHMS
from scoring._types import is_feature_type

logger = logging.getLogger(__name__)

SPECS_DIR = Path(__file__).resolve().parent / "specs"
DEFAULT_SPEC_PATH = SPECS_DIR / "default.yml"

VALIDATIONS = ("temporal", "stratified_kfold")
PROMOTION_METRICS = ("roc_auc", "pr_auc")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,59}$")
_RELATION = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")

_SPEC_KEYS = {
    "name",
    "relation",
    "id_columns",
    "label",
    "cutoff",
    "split",
    "test_cutoffs",
    "validation_cutoffs",
    "group",
    "features",
    "categorical",
    "validation",
    "test_share",
    "search",
    "candidates",
    "calibration",
    "threshold",
    "promotion",
    "max_training_rows",
    "max_evaluation_rows",
    "importance_rows",
    "oracle",
    "random_state",
    "description",
}


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
class ModelSpec:
    """One validated model spec (see docs/training.md for every field)."""

    name: str
    relation: str
    id_columns: tuple[str, ...]
    label: str
    cutoff: str | None
    split: str | None = None
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
    calibration: str = "sigmoid"
    threshold: ThresholdRule = field(default_factory=lambda: ThresholdRule(kind="max_f1"))
    promotion_metric: str = "roc_auc"
    promotion_margin: float = 0.0
    max_training_rows: int = 100_000
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
        """Columns never used as features: ids, label, cutoff, split, group."""
        cols = [*self.id_columns, self.label]
        cols += [c for c in (self.cutoff, self.split, self.group_column) if c]
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


def _str_list(value: Any, *, what: str, spec_name: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(spec_name, f"{what} must be a list of column names, got {value!r}")
    return tuple(value)


def _positive_int(value: Any, *, what: str, spec_name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(spec_name, f"{what} must be an integer >= {minimum}, got {value!r}")
    return value


def _parse_candidates(raw: Any, spec_name: str) -> dict[str, dict[str, tuple[Any, ...]]]:
    from models_py.training._candidates import validate_candidate

    if not isinstance(raw, Mapping) or not raw:
        raise _fail(
            spec_name,
            "candidates must map algorithm names to search spaces, e.g. "
            "{logistic_regression: {C: [0.1, 1.0]}}; algorithms: " + ", ".join(ALGORITHMS),
        )
    out: dict[str, dict[str, tuple[Any, ...]]] = {}
    for algo, space in raw.items():
        if algo not in ALGORITHMS:
            raise _fail(
                spec_name, f"unknown algorithm {algo!r}; choose from {', '.join(ALGORITHMS)}"
            )
        space = space or {}
        if not isinstance(space, Mapping):
            raise _fail(spec_name, f"search space of {algo} must be a mapping param -> list")
        grid = {str(k): tuple(v) if isinstance(v, list) else (v,) for k, v in dict(space).items()}
        if any(len(v) == 0 for v in grid.values()):
            raise _fail(spec_name, f"search space of {algo} has an empty list")
        validate_candidate(algo, grid, spec_name=spec_name)
        out[algo] = grid
    return out


def _parse_threshold(raw: Any, spec_name: str) -> ThresholdRule:
    if raw is None or raw == "max_f1":
        return ThresholdRule(kind="max_f1")
    if isinstance(raw, Mapping) and set(raw) == {"precision_at"}:
        value = raw["precision_at"]
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise _fail(spec_name, f"threshold precision_at must be in (0, 1), got {value!r}")
        return ThresholdRule(kind="precision_at", value=float(value))
    raise _fail(spec_name, f"threshold must be 'max_f1' or {{precision_at: 0.5}}, got {raw!r}")


def parse_spec(raw: Mapping[str, Any]) -> ModelSpec:
    """Validate one spec mapping (as read from YAML) into a `ModelSpec`.

    Raises
    ------
    ConfigError
        Naming the spec and the offending field.
    """
    if not isinstance(raw, Mapping):
        raise ConfigError(f"a model spec must be a mapping, got {raw!r}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            f"model spec name {name!r} is not allowed: use lowercase letters, digits and "
            "underscores, starting with a letter"
        )
    unknown = sorted(set(raw) - _SPEC_KEYS)
    if unknown:
        raise _fail(name, f"unknown field(s) {', '.join(unknown)}; allowed: {sorted(_SPEC_KEYS)}")

    relation = raw.get("relation")
    if not isinstance(relation, str) or not _RELATION.match(relation):
        raise _fail(name, f"relation must be 'schema.table', got {relation!r}")
    if "id_columns" not in raw:
        raise _fail(name, "id_columns is required (e.g. [customer_id])")
    id_columns = _str_list(raw["id_columns"], what="id_columns", spec_name=name)
    label = raw.get("label")
    if not isinstance(label, str) or not label:
        raise _fail(name, "label (the 0/1 column) is required")

    validation = raw.get("validation", "temporal")
    if validation not in VALIDATIONS:
        raise _fail(name, f"validation must be one of {', '.join(VALIDATIONS)}, got {validation!r}")
    cutoff = raw.get("cutoff")
    if validation == "temporal" and not isinstance(cutoff, str):
        raise _fail(
            name,
            "cutoff (the as-of date column) is required for validation: temporal; tables "
            "without a time axis use validation: stratified_kfold",
        )
    kfold = validation == "stratified_kfold"
    if kfold:
        temporal_only = [
            k
            for k in ("cutoff", "split", "test_cutoffs", "validation_cutoffs")
            if raw.get(k) is not None
        ]
        if temporal_only:
            raise _fail(
                name,
                f"{', '.join(temporal_only)} belong to validation: temporal; validation: "
                "stratified_kfold is for tables without a time axis (drop these fields, or use "
                "validation: temporal)",
            )
    elif "test_share" in raw:
        raise _fail(
            name,
            "test_share applies to validation: stratified_kfold only; validation: temporal tests "
            "on the newest cutoffs (test_cutoffs)",
        )
    test_share = raw.get("test_share", 0.2)
    if (
        isinstance(test_share, bool)
        or not isinstance(test_share, int | float)
        or not 0.05 <= test_share <= 0.5
    ):
        raise _fail(name, f"test_share must be a number in [0.05, 0.5], got {test_share!r}")
    split = raw.get("split")
    if split is not None and not isinstance(split, str):
        raise _fail(name, f"split must be a column name or null, got {split!r}")

    group_column: str | None = None
    groups: str | tuple[str, ...] | None = None
    group = raw.get("group")
    if group is not None:
        if (
            not isinstance(group, Mapping)
            or not isinstance(group.get("column"), str)
            or set(group) - {"column", "groups"}
        ):
            raise _fail(
                name, "group must be {column: product_group, groups: all_active | all | [..]}"
            )
        group_column = group["column"]
        # all_active needs marts.dim_product_groups (product groups); a plain table's column
        # (an experiment arm, a segment) defaults to every value present.
        g = group.get("groups", "all" if kfold else "all_active")
        if g in ("all_active", "all"):
            groups = g
        else:
            if isinstance(g, list):  # integer-coded arms are matched as text
                g = [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in g]
            groups = _str_list(g, what="group.groups", spec_name=name)

    features_raw = raw.get("features", {"numeric_except": []})
    features: tuple[str, ...] | None = None
    numeric_except: tuple[str, ...] = ()
    if isinstance(features_raw, list):
        features = _str_list(features_raw, what="features", spec_name=name)
        if len(set(features)) != len(features):
            raise _fail(name, "features lists a column twice")
    elif isinstance(features_raw, Mapping) and set(features_raw) <= {"numeric_except"}:
        numeric_except = (
            _str_list(
                features_raw.get("numeric_except") or [], what="numeric_except", spec_name=name
            )
            if features_raw.get("numeric_except")
            else ()
        )
    else:
        raise _fail(name, "features must be a list of columns or {numeric_except: [...]}")
    categorical = (
        _str_list(raw.get("categorical") or [], what="categorical", spec_name=name)
        if (raw.get("categorical"))
        else ()
    )

    calibration = raw.get("calibration", "sigmoid")
    if calibration == "isotonic":
        raise _fail(
            name,
            "calibration: isotonic is refused: its step function does not export to ONNX with "
            "exact parity and overfits small validation periods; use calibration: sigmoid",
        )
    if calibration != "sigmoid":
        raise _fail(name, f"calibration must be 'sigmoid', got {calibration!r}")

    search = raw.get("search") or {}
    if not isinstance(search, Mapping) or set(search) - {"folds", "max_rows"}:
        raise _fail(name, "search accepts {folds: N, max_rows: N}")
    folds = _positive_int(
        search.get("folds", 5 if kfold else 2),
        what="search.folds",
        spec_name=name,
        minimum=2 if kfold else 0,
    )
    promotion = raw.get("promotion") or {}
    if not isinstance(promotion, Mapping) or set(promotion) - {"metric", "margin"}:
        raise _fail(name, "promotion accepts {metric: roc_auc | pr_auc, margin: 0.005}")
    metric = promotion.get("metric", "roc_auc")
    if metric not in PROMOTION_METRICS:
        raise _fail(name, f"promotion metric must be one of {PROMOTION_METRICS}, got {metric!r}")
    margin = promotion.get("margin", 0.0)
    if isinstance(margin, bool) or not isinstance(margin, int | float) or not 0 <= margin < 1:
        raise _fail(name, f"promotion margin must be a number in [0, 1), got {margin!r}")

    oracle = None
    if raw.get("oracle"):
        o = raw["oracle"]
        if not isinstance(o, Mapping) or not _RELATION.match(str(o.get("relation", ""))):
            raise _fail(
                name,
                "oracle must be {relation: schema.table, probability: column, "
                "observable_probability: column (optional)}",
            )
        observable = o.get("observable_probability")
        if observable is not None and not isinstance(observable, str):
            raise _fail(
                name, f"oracle observable_probability must be a column name, got {observable!r}"
            )
        oracle = OracleSpec(
            relation=o["relation"],
            probability=o.get("probability", "probability"),
            observable_probability=observable,
        )

    random_state = raw.get("random_state", 0)
    if isinstance(random_state, bool) or not isinstance(random_state, int):
        raise _fail(name, f"random_state must be an integer, got {random_state!r}")

    spec = ModelSpec(
        name=name,
        relation=relation,
        id_columns=id_columns,
        label=label,
        cutoff=cutoff,
        split=split,
        test_cutoffs=_positive_int(raw.get("test_cutoffs", 1), what="test_cutoffs", spec_name=name),
        validation_cutoffs=_positive_int(
            raw.get("validation_cutoffs", 1), what="validation_cutoffs", spec_name=name
        ),
        group_column=group_column,
        groups=groups,
        features=features,
        numeric_except=numeric_except,
        categorical=categorical,
        validation=validation,
        test_share=float(test_share),
        search_folds=folds,
        search_max_rows=_positive_int(
            search.get("max_rows", 20_000), what="search.max_rows", spec_name=name, minimum=100
        ),
        candidates=_parse_candidates(raw.get("candidates"), name),
        calibration=calibration,
        threshold=_parse_threshold(raw.get("threshold"), name),
        promotion_metric=metric,
        promotion_margin=float(margin),
        max_training_rows=_positive_int(
            raw.get("max_training_rows", 100_000),
            what="max_training_rows",
            spec_name=name,
            minimum=100,
        ),
        max_evaluation_rows=_positive_int(
            raw.get("max_evaluation_rows", 100_000),
            what="max_evaluation_rows",
            spec_name=name,
            minimum=100,
        ),
        importance_rows=_positive_int(
            raw.get("importance_rows", 2_000), what="importance_rows", spec_name=name, minimum=0
        ),
        oracle=oracle,
        random_state=random_state,
    )
    overlap = set(spec.key_columns) & set(spec.features or ())
    if overlap:
        raise _fail(name, f"features must not include key columns: {', '.join(sorted(overlap))}")
    if spec.features is not None:
        missing_cat = [c for c in spec.categorical if c not in spec.features]
        if missing_cat:
            raise _fail(
                name,
                f"categorical column(s) {', '.join(missing_cat)} are not in the features list",
            )
    return spec


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
        ("group column", spec.group_column),
        *[("numeric_except column", c) for c in spec.numeric_except],
        *[("feature", c) for c in spec.features or ()],
        *[("categorical column", c) for c in spec.categorical],
    ]:
        if col is not None and col not in columns:
            raise _fail(spec.name, f"{what} {col!r} is not a column of {spec.relation}")
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
