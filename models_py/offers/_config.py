"""Offer configuration (`offers.yml`): which arms of an offer family's uplift model set may be
offered, at what contact cost, within which budget, to whom, under which policy. Declared as a
pydantic schema; `set_offers` validates a file and writes it to ``raw.offer_config`` (one row
per offer and arm), which dbt's fct_offer_assignments reads.

```yaml
offers:
  winter_discount:
    offer_family: discount            # the uplift spec's offer_family (fct_uplift_scores)
    description: Winter discount by expected incremental margin.
    arms:                             # the treated arms that may be offered
      "20": {cost_per_contact: 0.05, max_customers: 5000}
      "25": {cost_per_contact: 0.05, max_discount_spend: 20000}
    policy: profit                    # or rule_table (rules below)
    rules:                            # rule_table only: first matching rule, in order
      - {arm: "25", min_cate_purchase: 0.08}
      - {arm: "20", min_cate_purchase: 0.04}
    suppression: {exclude_unsubscribed_or_no_opt_in: true, contacted_within_days: 7}
    holdout_share: 0.1
    holdout_salt: "2026-winter"
    require_held_out_gain: true       # profit policy: no offers while held-out value <= 0
```
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from models_py._errors import ConfigError
from models_py._yaml import read_yaml_file

logger = logging.getLogger(__name__)

OFFER_TABLE = "offer_config"
DEFAULT_OFFERS = Path(__file__).resolve().parent / "default.yml"
Name = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,59}$")]


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ArmSchema(_Schema):
    cost_per_contact: float = Field(0.0, ge=0)
    max_customers: int | None = Field(None, ge=1)
    max_discount_spend: float | None = Field(None, gt=0)


class RuleSchema(_Schema):
    arm: str
    min_cate_purchase: float


class SuppressionSchema(_Schema):
    exclude_vip: bool = False
    exclude_unsubscribed_or_no_opt_in: bool = True
    contacted_within_days: int | None = Field(None, ge=1)
    frequency_cap: int | None = Field(None, ge=1)


class OfferSchema(_Schema):
    offer_family: Name
    description: str = ""
    arms: dict[str, ArmSchema] = Field(min_length=1)
    policy: Literal["profit", "rule_table"] = "profit"
    rules: list[RuleSchema] = Field(default_factory=list)
    suppression: SuppressionSchema = SuppressionSchema()
    holdout_share: float = Field(0.1, ge=0, lt=1)
    holdout_salt: str = "propensity"
    #: profit policy only: offer nothing while the champion set's held-out policy value (the
    #: incremental margin its profit policy earned on the experiment's held-out share) is <= 0.
    require_held_out_gain: bool = True


def _message(offer_id: str, error: ValidationError) -> str:
    problems = []
    for e in error.errors():
        where = ".".join(str(p) for p in e["loc"]) or "offer"
        problems.append(f"{where}: {e['msg']}")
    return f"offer {offer_id!r}: " + "; ".join(problems)


def parse_offer(offer_id: object, raw: object) -> OfferSchema:
    if not isinstance(offer_id, str) or not offer_id:
        raise ConfigError(f"offer ids are non-empty names, got {offer_id!r}")
    if isinstance(raw, dict) and isinstance(raw.get("arms"), dict):
        # YAML reads arms "20" and 20 alike as keys; arms are matched as text.
        raw = {**raw, "arms": {str(k): v for k, v in raw["arms"].items()}}
    try:
        offer = OfferSchema.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_message(offer_id, exc)) from None
    if offer.policy == "rule_table":
        if not offer.rules:
            raise ConfigError(f"offer {offer_id!r}: policy rule_table needs `rules`")
        unknown = [r.arm for r in offer.rules if r.arm not in offer.arms]
        if unknown:
            raise ConfigError(
                f"offer {offer_id!r}: rules name arms {unknown} that are not in `arms` "
                f"({sorted(offer.arms)})"
            )
    elif offer.rules:
        raise ConfigError(f"offer {offer_id!r}: `rules` apply only with policy rule_table")
    return offer


def read_offers(path: Path | str) -> dict[str, OfferSchema]:
    """Read and validate an offers YAML file."""
    config = read_yaml_file(path, what="offers config") or {}
    offers = config.get("offers") if isinstance(config, dict) else None
    if not isinstance(offers, dict) or not offers:
        raise ConfigError(f"{path}: an offers file holds `offers:`, a mapping of offer id -> offer")
    try:
        return {str(k): parse_offer(k, v) for k, v in offers.items()}
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from exc


#: The schema of `raw.offer_config`: one row per offer and arm.
OFFER_SCHEMA = pa.schema(
    [
        pa.field("offer_id", pa.string()),
        pa.field("offer_family", pa.string()),
        pa.field("description", pa.string()),
        pa.field("policy", pa.string()),
        pa.field("arm", pa.string()),
        pa.field("cost_per_contact", pa.float64()),
        pa.field("max_customers", pa.int64()),
        pa.field("max_discount_spend", pa.float64()),
        pa.field("rule_order", pa.int32()),
        pa.field("rule_min_cate_purchase", pa.float64()),
        pa.field("exclude_vip", pa.bool_()),
        pa.field("exclude_unsubscribed_or_no_opt_in", pa.bool_()),
        pa.field("contacted_within_days", pa.int32()),
        pa.field("frequency_cap", pa.int32()),
        pa.field("holdout_share", pa.float64()),
        pa.field("holdout_salt", pa.string()),
        pa.field("require_held_out_gain", pa.bool_()),
    ]
)


def offers_to_arrow(offers: dict[str, OfferSchema]) -> pa.Table:
    rows = []
    for offer_id, o in offers.items():
        order = {r.arm: (i + 1, r.min_cate_purchase) for i, r in enumerate(o.rules)}
        for arm, a in o.arms.items():
            rule = order.get(arm, (None, None))
            rows.append(
                {
                    "offer_id": offer_id,
                    "offer_family": o.offer_family,
                    "description": o.description,
                    "policy": o.policy,
                    "arm": arm,
                    "cost_per_contact": a.cost_per_contact,
                    "max_customers": a.max_customers,
                    "max_discount_spend": a.max_discount_spend,
                    "rule_order": rule[0],
                    "rule_min_cate_purchase": rule[1],
                    **o.suppression.model_dump(),
                    "holdout_share": o.holdout_share,
                    "holdout_salt": o.holdout_salt,
                    "require_held_out_gain": o.require_held_out_gain,
                }
            )
    return pa.Table.from_pylist(rows, schema=OFFER_SCHEMA)


def set_offers(warehouse: Path | str, path: Path | str) -> dict[str, OfferSchema]:
    """Validate the offers YAML at `path` and make it the warehouse's offer configuration
    (atomically). Nothing is written when the file is invalid (`ConfigError`); assignments change
    at the next `dbt build` (or `dbt run --select fct_offer_assignments`)."""
    from models_py._warehouse import connect
    from models_py.ingest._raw import write_raw_tables

    offers = read_offers(path)
    con = connect(warehouse)
    try:
        n = write_raw_tables(con, {OFFER_TABLE: offers_to_arrow(offers)})[OFFER_TABLE]
    finally:
        con.close()
    logger.info("wrote %d offer arms to raw.%s", n, OFFER_TABLE)
    return offers
