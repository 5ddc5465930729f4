"""Experiment configuration (`experiments.yml`): who is in an experiment, which arms with which
shares, how they are drawn, and how the outcomes are read. Declared as a pydantic schema;
`read_experiments` validates a file, `config_rows` turns it into ``raw.experiment_config``
(one row per experiment and arm), which dbt's dim_experiments reads.

```yaml
experiments:
  winter_discount_2026:
    description: 20 % and 25 % against no discount, any_winback audience.
    assignment: hash                  # salted hash (default); campaign_holdout; external
    audience: {campaign: any_winback} # or {all_customers: true} or {relation: schema.table}
    arms:
      "0": {share: 0.5, discount_pct: 0}
      "20": {share: 0.25, discount_pct: 20}
      "25": {share: 0.25, discount_pct: 25}
    control: "0"
    salt: winter-2026                 # the same salt draws the same arms
    assigned_at: 2026-10-01           # optional; default: the audience's cutoff
    window_days: 30                   # optional; default dbt var horizon_days (30)
    primary_metric: conversion        # conversion, orders, revenue or margin
    overlap: error                    # or exclude: leave out customers in overlapping experiments
  wine_campaign_holdout:
    assignment: campaign_holdout      # the campaign's own hold-out against the contacted
    audience: {campaign: wine_top_deciles}
  discount_2026q3:                    # an experiment loaded into raw.treatments
    assignment: external
    arms: {"0": {share: 0.3334}, "20": {share: 0.3333}, "25": {share: 0.3333}}
    control: "0"
```
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from models_py._errors import ConfigError
from models_py._yaml import read_yaml_file
from models_py.experiments._errors import SharesError, UnknownArmError

#: Hash buckets: a customer's bucket is md5(salt | experiment | customer) mod BUCKETS, and an arm
#: holds a contiguous range of round(share x BUCKETS) buckets (the campaigns' hold-out macro).
BUCKETS = 10_000
#: Shares must sum to 1 within this.
SHARE_TOLERANCE = 1e-6
METRICS = ("conversion", "orders", "revenue", "margin")
#: The arms of a recorded campaign hold-out: the contacted customers and the hold-out (control).
CONTACTED, HOLDOUT = "contacted", "holdout"

ExperimentId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
ArmName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")]
Relation = Annotated[
    str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*\.[A-Za-z_][A-Za-z0-9_]*$")
]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ArmSchema(_Schema):
    share: float = Field(gt=0, le=1)
    discount_pct: float | None = Field(None, ge=0, lt=100)


class AudienceSchema(_Schema):
    campaign: str | None = None
    all_customers: bool = False
    relation: Relation | None = None

    def kind_and_value(self) -> tuple[str, str]:
        given = [
            (kind, value)
            for kind, value in (
                ("campaign", self.campaign),
                ("all_customers", "all" if self.all_customers else None),
                ("relation", self.relation),
            )
            if value
        ]
        if len(given) != 1:
            raise ConfigError(
                "audience must be exactly one of {campaign: ID}, {all_customers: true}, "
                f"{{relation: schema.table}}, got {self.model_dump(exclude_defaults=True)}"
            )
        return given[0]


class ExperimentSchema(_Schema):
    description: str = ""
    assignment: Literal["hash", "campaign_holdout", "external"] = "hash"
    audience: AudienceSchema | None = None
    arms: dict[ArmName, ArmSchema] = Field(default_factory=dict)
    control: str | None = None
    salt: str | None = Field(None, min_length=1)
    assigned_at: dt.datetime | dt.date | None = None
    window_days: int | None = Field(None, ge=1, le=3650)
    primary_metric: Literal["conversion", "orders", "revenue", "margin"] = "conversion"
    overlap: Literal["error", "exclude"] = "error"

    @property
    def assigned_at_time(self) -> dt.datetime | None:
        """`assigned_at` as a timestamp (a date is its midnight)."""
        value = self.assigned_at
        if value is None or isinstance(value, dt.datetime):
            return value
        return dt.datetime(value.year, value.month, value.day)


def _message(experiment_id: str, error: ValidationError) -> str:
    problems = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"]) or "experiment"
        problems.append(f"{where}: {e['msg']}")
    return f"experiment {experiment_id!r}: " + "; ".join(problems)


def bucket_ranges(arms: dict[str, ArmSchema]) -> dict[str, tuple[int, int]]:
    """Each arm's buckets [lo, hi) in the order of `arms`: round(cumulative share x BUCKETS)."""
    ranges: dict[str, tuple[int, int]] = {}
    cumulative = 0.0
    lo = 0
    for arm, a in arms.items():
        cumulative += a.share
        hi = min(BUCKETS, round(cumulative * BUCKETS))
        ranges[arm] = (lo, hi)
        lo = hi
    return ranges


def _check_shares(experiment_id: str, arms: dict[str, ArmSchema]) -> None:
    total = sum(a.share for a in arms.values())
    if abs(total - 1) > SHARE_TOLERANCE:
        listed = ", ".join(f"{arm} {a.share:g}" for arm, a in arms.items())
        raise SharesError(
            f"experiment {experiment_id!r}: the arm shares sum to {total:.6g}, not 1 ({listed}). "
            "Give shares that add up to 1, e.g. 0.5, 0.25, 0.25."
        )
    empty = [arm for arm, (lo, hi) in bucket_ranges(arms).items() if hi <= lo]
    if empty:
        raise SharesError(
            f"experiment {experiment_id!r}: arms {empty} get no hash bucket (shares are drawn in "
            f"steps of 1/{BUCKETS:,}): give each arm a share of at least {1 / BUCKETS:g}."
        )


def parse_experiment(experiment_id: object, raw: object) -> ExperimentSchema:
    """Validate one experiment of experiments.yml: a `ConfigError` (or a subclass) says what to
    fix."""
    if not isinstance(experiment_id, str):
        raise ConfigError(f"experiment ids are names, got {experiment_id!r}")
    if isinstance(raw, dict) and isinstance(raw.get("arms"), dict):
        # YAML reads arms "20" and 20 alike as keys; arms are matched as text.
        raw = {**raw, "arms": {str(k): v for k, v in raw["arms"].items()}}
    if isinstance(raw, dict) and raw.get("control") is not None:
        raw = {**raw, "control": str(raw["control"])}
    try:
        ExperimentIdCheck.model_validate({"experiment_id": experiment_id})
        e = ExperimentSchema.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_message(experiment_id, exc)) from None
    where = f"experiment {experiment_id!r}"
    if e.assignment == "campaign_holdout":
        if e.audience is None or e.audience.campaign is None:
            raise ConfigError(
                f"{where}: assignment campaign_holdout needs audience: {{campaign: ID}}"
            )
        e.audience.kind_and_value()
        given = [k for k in ("arms", "control", "salt") if getattr(e, k)]
        if given:
            raise ConfigError(
                f"{where}: assignment campaign_holdout takes its arms ({CONTACTED}, {HOLDOUT}), "
                f"shares and salt from the campaign; remove {', '.join(given)}"
            )
        return e
    if len(e.arms) < 2:
        raise ConfigError(f"{where}: an experiment needs at least two arms, got {list(e.arms)}")
    if e.control is None:
        raise ConfigError(f"{where}: name the control arm (`control:`), one of {list(e.arms)}")
    if e.control not in e.arms:
        raise UnknownArmError(
            f"{where}: control arm {e.control!r} is not one of its arms {list(e.arms)}. "
            "Name one of them, or add the arm."
        )
    _check_shares(experiment_id, e.arms)
    if e.assignment == "external":
        extra = [k for k in ("audience", "salt", "assigned_at") if getattr(e, k) is not None]
        if extra:
            raise ConfigError(
                f"{where}: assignment external describes assignments already in raw.treatments; "
                f"remove {', '.join(extra)}"
            )
        return e
    if e.audience is None:
        raise ConfigError(
            f"{where}: assignment hash needs an audience: {{campaign: ID}}, "
            "{all_customers: true} or {relation: schema.table}"
        )
    e.audience.kind_and_value()
    if e.salt is None:
        raise ConfigError(
            f"{where}: assignment hash needs a salt (any text; the same salt draws the same arms)"
        )
    return e


class ExperimentIdCheck(_Schema):
    experiment_id: ExperimentId


def read_experiments(path: Path | str) -> dict[str, ExperimentSchema]:
    """Read and validate an experiments YAML file."""
    config = read_yaml_file(path, what="experiments config") or {}
    experiments = config.get("experiments") if isinstance(config, dict) else None
    if not isinstance(experiments, dict) or not experiments:
        raise ConfigError(
            f"{path}: an experiments file holds `experiments:`, a mapping of experiment id -> "
            "experiment (docs/experiments.md)"
        )
    out = {}
    for key, value in experiments.items():
        try:
            out[str(key)] = parse_experiment(key, value)
        except ConfigError as exc:
            exc.args = (f"{path}: {exc}",)
            raise
    return out


#: The schema of `raw.experiment_config`: one row per experiment and arm.
CONFIG_SCHEMA = pa.schema(
    [
        pa.field("experiment_id", pa.string()),
        pa.field("description", pa.string()),
        pa.field("assignment", pa.string()),
        pa.field("audience_kind", pa.string()),
        pa.field("audience", pa.string()),
        pa.field("control_arm", pa.string()),
        pa.field("arm", pa.string()),
        pa.field("share", pa.float64()),
        pa.field("discount_pct", pa.float64()),
        pa.field("salt", pa.string()),
        pa.field("window_days", pa.int32()),
        pa.field("primary_metric", pa.string()),
        pa.field("configured_at", pa.timestamp("us")),
    ]
)


def config_rows(
    experiment_id: str,
    e: ExperimentSchema,
    *,
    arms: dict[str, ArmSchema] | None = None,
    control: str | None = None,
    salt: str | None = None,
    configured_at: dt.datetime,
) -> list[dict]:
    """The rows of `raw.experiment_config` for one experiment (`arms`, `control`, `salt` when
    they come from elsewhere, e.g. a campaign's hold-out)."""
    kind, value = e.audience.kind_and_value() if e.audience else (None, None)
    return [
        {
            "experiment_id": experiment_id,
            "description": e.description,
            "assignment": e.assignment,
            "audience_kind": kind,
            "audience": value,
            "control_arm": control or e.control,
            "arm": arm,
            "share": a.share,
            "discount_pct": a.discount_pct,
            "salt": salt or e.salt,
            "window_days": e.window_days,
            "primary_metric": e.primary_metric,
            "configured_at": configured_at,
        }
        for arm, a in (arms or e.arms).items()
    ]
