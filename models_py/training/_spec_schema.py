"""The model spec schema: what a spec mapping (as read from YAML) may hold, declared as pydantic
models. `parse_spec` (in `_specs`) validates a mapping against `SpecSchema` and turns every
problem into one `ConfigError` naming the spec, the field and what is allowed.

Types are strict (a boolean is not a number, a number is not a column name); rules that involve
several fields (what the validation protocol allows, key columns among the features) are the
`SpecSchema` model validator.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from models_py.training._algorithms import ALGORITHM_NAMES

VALIDATIONS = ("temporal", "stratified_kfold")
PROMOTION_METRICS = ("roc_auc", "pr_auc")
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,59}$"
RELATION_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$"


def _one_or_many(value: Any) -> Any:
    """A single column name stands for a list of one."""
    return [value] if isinstance(value, str) else value


Column = Annotated[str, StringConstraints(min_length=1)]
Columns = Annotated[list[Column], BeforeValidator(_one_or_many)]
Relation = Annotated[str, StringConstraints(pattern=RELATION_PATTERN)]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class GroupSchema(_Schema):
    column: str
    #: all_active needs marts.dim_product_groups (product groups); a plain table's column (an
    #: experiment arm, a segment) defaults to every value present (see `SpecSchema`).
    groups: Literal["all_active", "all"] | Columns | None = None

    @field_validator("groups", mode="before")
    @classmethod
    def _arms_as_text(cls, value: Any) -> Any:
        """Integer-coded arms are matched as text."""
        if isinstance(value, list):
            return [str(v) if isinstance(v, int) and not isinstance(v, bool) else v for v in value]
        return value


class FeatureSelection(_Schema):
    numeric_except: Columns | None = None


class SearchSchema(_Schema):
    folds: int | None = None
    max_rows: int = Field(20_000, ge=100)


class PromotionSchema(_Schema):
    metric: Literal["roc_auc", "pr_auc"] = "roc_auc"
    margin: float = Field(0.0, ge=0, lt=1)


class RetrainingSchema(_Schema):
    """When `propensity retrain --if-needed` retrains a group (docs/operations.md)."""

    max_age_days: int = Field(90, ge=1)
    auc_drop: float = Field(0.02, gt=0, lt=1)
    drift_top_features: int = Field(10, ge=1)
    drift_min_alerts: int = Field(1, ge=1)
    score_drift: bool = True
    min_days_between: int = Field(7, ge=0)


class OracleSchema(_Schema):
    relation: Relation
    probability: str = "probability"
    #: The observable oracle (docs/oracle.md); NULL rows are ignored.
    observable_probability: str | None = None


class PrecisionAt(_Schema):
    precision_at: float = Field(gt=0, lt=1)


class SpecSchema(_Schema):
    """One model spec (docs/training.md describes every field)."""

    name: Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
    relation: Relation
    id_columns: Columns
    label: Column
    cutoff: str | None = None
    split: str | None = None
    weight: str | None = None
    test_cutoffs: int = Field(1, ge=1)
    validation_cutoffs: int = Field(1, ge=1)
    group: GroupSchema | None = None
    features: Columns | FeatureSelection = FeatureSelection()
    categorical: Columns | None = None
    validation: Literal["temporal", "stratified_kfold"] = "temporal"
    test_share: float = Field(0.2, ge=0.05, le=0.5)
    search: SearchSchema | None = None
    candidates: dict[str, dict[str, Any]]
    ensembles: list[Literal["soft_voting", "stacking"]] = Field(default_factory=list)
    calibration: Literal["sigmoid"] = "sigmoid"
    threshold: Literal["max_f1"] | PrecisionAt | None = None
    promotion: PromotionSchema | None = None
    retraining: RetrainingSchema | None = None
    max_training_rows: int = Field(100_000, ge=100)
    max_positive_share: float | None = Field(None, gt=0, lt=1)
    max_evaluation_rows: int = Field(100_000, ge=100)
    importance_rows: int = Field(2_000, ge=0)
    oracle: OracleSchema | None = None
    random_state: int = 0
    description: Any = None

    @field_validator("candidates", mode="before")
    @classmethod
    def _spaces(cls, value: Any) -> Any:
        """A search space maps a hyperparameter to a list of values (one value = a list of one);
        an algorithm without a space uses its defaults."""
        if not isinstance(value, dict) or not value:
            raise ValueError("candidates must map")
        unknown = [a for a in value if a not in ALGORITHM_NAMES]
        if unknown:
            raise ValueError(
                f"unknown algorithm {unknown[0]!r}; choose from {', '.join(ALGORITHM_NAMES)}"
            )
        out = {}
        for algo, space in value.items():
            space = space or {}
            if not isinstance(space, dict):
                raise ValueError(f"search space of {algo} must be a mapping param -> list")
            grid = {str(k): tuple(v) if isinstance(v, list) else (v,) for k, v in space.items()}
            if any(len(v) == 0 for v in grid.values()):
                raise ValueError(f"search space of {algo} has an empty list")
            out[algo] = grid
        return out

    @field_validator("features", mode="after")
    @classmethod
    def _distinct(cls, value: Any) -> Any:
        if isinstance(value, list) and len(set(value)) != len(value):
            raise ValueError("features lists a column twice")
        return value

    @field_validator("oracle", mode="before")
    @classmethod
    def _no_oracle(cls, value: Any) -> Any:
        return value or None

    @field_validator("calibration", mode="before")
    @classmethod
    def _isotonic(cls, value: Any) -> Any:
        if value == "isotonic":
            raise ValueError(
                "calibration: isotonic is refused: its step function does not export to ONNX "
                "with exact parity and overfits small validation periods; use calibration: "
                "sigmoid"
            )
        return value

    @model_validator(mode="after")
    def _protocol_fields(self) -> SpecSchema:
        """Fields of one validation protocol are refused under the other."""
        if self.validation == "temporal":
            if self.cutoff is None:
                raise ValueError(
                    "cutoff (the as-of date column) is required for validation: temporal; "
                    "tables without a time axis use validation: stratified_kfold"
                )
            if "test_share" in self.model_fields_set:
                raise ValueError(
                    "test_share applies to validation: stratified_kfold only; validation: "
                    "temporal tests on the newest cutoffs (test_cutoffs)"
                )
        else:
            temporal_only = [
                k
                for k in (
                    "cutoff",
                    "split",
                    "test_cutoffs",
                    "validation_cutoffs",
                    "max_positive_share",
                    "weight",
                )
                if k in self.model_fields_set and getattr(self, k) is not None
            ]
            if temporal_only:
                raise ValueError(
                    f"{', '.join(temporal_only)} belong to validation: temporal; validation: "
                    "stratified_kfold is for tables without a time axis (drop these fields, or "
                    "use validation: temporal)"
                )
        minimum = self.min_folds
        folds = self.search_folds
        if folds < minimum:
            raise ValueError(f"search.folds must be an integer >= {minimum}, got {folds!r}")
        keys = {*self.id_columns, self.label, self.cutoff, self.split, self.weight}
        keys |= {self.group.column} if self.group else set()
        overlap = keys & set(self.features if isinstance(self.features, list) else ())
        if overlap:
            raise ValueError(f"features must not include key columns: {', '.join(sorted(overlap))}")
        if isinstance(self.features, list):
            missing = [c for c in self.categorical or () if c not in self.features]
            if missing:
                raise ValueError(
                    f"categorical column(s) {', '.join(missing)} are not in the features list"
                )
        return self

    @property
    def is_kfold(self) -> bool:
        return self.validation == "stratified_kfold"

    @property
    def min_folds(self) -> int:
        return 2 if self.is_kfold else 0

    @property
    def search_folds(self) -> int:
        folds = self.search.folds if self.search else None
        return folds if folds is not None else (5 if self.is_kfold else 2)

    @property
    def group_values(self) -> str | tuple[str, ...] | None:
        if self.group is None:
            return None
        g = self.group.groups
        if g is None:
            return "all" if self.is_kfold else "all_active"
        return g if isinstance(g, str) else tuple(g)


#: What each field must be, for messages about a value of the wrong type or out of range.
RULES: dict[str, str] = {
    "relation": "relation must be 'schema.table'",
    "id_columns": "id_columns must be a list of column names",
    "label": "label (the 0/1 column) is required",
    "cutoff": "cutoff (the as-of date column) must be a column name",
    "split": "split must be a column name or null",
    "weight": "weight must be a column name (of sampling weights) or null",
    "test_cutoffs": "test_cutoffs must be an integer >= 1",
    "validation_cutoffs": "validation_cutoffs must be an integer >= 1",
    "group": "group must be {column: product_group, groups: all_active | all | [..]}",
    "features": "features must be a list of columns or {numeric_except: [...]}",
    "categorical": "categorical must be a list of column names",
    "validation": f"validation must be one of {', '.join(VALIDATIONS)}",
    "test_share": "test_share must be a number in [0.05, 0.5]",
    "search": "search accepts {folds: N, max_rows: N}",
    "search.folds": "search.folds must be an integer",
    "search.max_rows": "search.max_rows must be an integer >= 100",
    "candidates": (
        "candidates must map algorithm names to search spaces, e.g. "
        "{logistic_regression: {C: [0.1, 1.0]}}; algorithms: " + ", ".join(ALGORITHM_NAMES)
    ),
    "ensembles": "ensembles must be a list of soft_voting, stacking",
    "calibration": "calibration must be 'sigmoid'",
    "threshold": "threshold must be 'max_f1' or {precision_at: 0.5}",
    "threshold.precision_at": "threshold precision_at must be in (0, 1)",
    "promotion": "promotion accepts {metric: roc_auc | pr_auc, margin: 0.005}",
    "promotion.metric": f"promotion metric must be one of {PROMOTION_METRICS}",
    "promotion.margin": "promotion margin must be a number in [0, 1)",
    "retraining": (
        "retraining accepts {max_age_days: 90, auc_drop: 0.02, drift_top_features: 10, "
        "drift_min_alerts: 1, score_drift: true, min_days_between: 7}"
    ),
    "retraining.max_age_days": "retraining max_age_days must be an integer >= 1",
    "retraining.auc_drop": "retraining auc_drop must be a number in (0, 1)",
    "retraining.drift_top_features": "retraining drift_top_features must be an integer >= 1",
    "retraining.drift_min_alerts": "retraining drift_min_alerts must be an integer >= 1",
    "retraining.score_drift": "retraining score_drift must be true or false",
    "retraining.min_days_between": "retraining min_days_between must be an integer >= 0",
    "max_training_rows": "max_training_rows must be an integer >= 100",
    "max_evaluation_rows": "max_evaluation_rows must be an integer >= 100",
    "max_positive_share": "max_positive_share must be a number between 0 and 1 (exclusive) or null",
    "importance_rows": "importance_rows must be an integer >= 0",
    "oracle": (
        "oracle must be {relation: schema.table, probability: column, "
        "observable_probability: column (optional)}"
    ),
    "oracle.observable_probability": "oracle observable_probability must be a column name",
    "random_state": "random_state must be an integer",
}
REQUIRED: dict[str, str] = {
    "relation": "relation must be 'schema.table', got None",
    "id_columns": "id_columns is required (e.g. [customer_id])",
    "label": "label (the 0/1 column) is required",
    "candidates": RULES["candidates"],
}


def _field(loc: tuple[Any, ...]) -> str:
    """`threshold.precision_at` for a loc such as ('threshold', 'PrecisionAt', 'precision_at')."""
    parts = [str(p) for p in loc if isinstance(p, str) and not p[:1].isupper()]
    parts = [p for p in parts if not p.startswith(("literal[", "list[", "function-"))]
    return ".".join(parts)


def describe_errors(exc: ValidationError) -> list[str]:
    """One sentence per problem (unknown fields gathered in one), most specific rule first."""
    unknown: list[str] = []
    #: top-level field -> (specificity, message): one message per field, the most specific one
    #: (a union's alternatives all fail; the deepest error names what was meant).
    best: dict[str, tuple[int, str]] = {}
    for err in exc.errors():
        where = _field(err["loc"])
        top = where.split(".")[0] if where else ""
        depth = where.count(".")
        if err["type"] == "extra_forbidden":
            if len(err["loc"]) == 1:
                unknown.append(where)
                continue
            message = RULES.get(top, f"{top} has an unknown field {where.split('.')[-1]!r}")
        elif err["type"] == "value_error":
            message = str(err["ctx"]["error"])
            if message == "candidates must map":
                message = RULES["candidates"]
            depth = 99
        elif err["type"] == "missing" and where in REQUIRED:
            message = REQUIRED[where]
        else:
            rule = RULES.get(where) or RULES.get(top) or f"{where}: {err['msg']}"
            message = f"{rule}, got {err.get('input')!r}"
        if top not in best or depth > best[top][0]:
            best[top] = (depth, message)
    out = [message for _, message in best.values()]
    if unknown:
        allowed = sorted(SpecSchema.model_fields)
        out.insert(0, f"unknown field(s) {', '.join(sorted(unknown))}; allowed: {allowed}")
    return out
