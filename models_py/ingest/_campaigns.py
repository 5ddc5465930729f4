"""Campaigns as configuration: who to select from the scores, who to suppress, who to hold out.

A YAML file maps each campaign id to a product group, a selection rule, ordered message tiers,
suppression rules and a hold-out share. `propensity campaigns set FILE.yml` validates it and
replaces the warehouse table `raw.campaign_config` (one row per campaign); the dbt models
`dim_campaigns` and `fct_campaign_audiences` turn it into audiences at every `dbt build`. Product
group names are checked against the warehouse's groups by a dbt test (`dim_campaigns`), because
the groups live in the warehouse, not in this file. See docs/audiences.md.

Example::

    campaigns:
      wine_winter:
        product_group: wine
        selection: {deciles: [1, 2]}          # or {threshold: 0.3} or {top_k: 5000}
        message_tiers:                        # first matching rule wins
          - {tier: exclusive_offer, min_score: 0.5}
          - {tier: standard_offer}            # no condition: everybody else
        suppression:
          exclude_vip: false
          exclude_unsubscribed_or_no_opt_in: true
          contacted_within_days: 7
          frequency_cap: 4                    # max sends in the 30 days before the cutoff
        holdout_share: 0.1
        holdout_salt: "2025-winter"
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from models_py._errors import ConfigError
from models_py._yaml import read_yaml_file
from models_py.ingest._groups import validate_group_name

logger = logging.getLogger(__name__)

#: The warehouse table (schema `raw`) holding the campaign configuration.
CAMPAIGN_TABLE = "campaign_config"
#: Demo campaigns for the synthetic warehouse's product groups.
DEFAULT_CAMPAIGNS = Path(__file__).resolve().parent / "campaigns" / "default.yml"

CAMPAIGN_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
TIER_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
SELECTION_TYPES = ("threshold", "top_k", "deciles")
SUPPRESSION_FIELDS = (
    "exclude_vip",
    "exclude_unsubscribed_or_no_opt_in",
    "contacted_within_days",
    "frequency_cap",
)
CAMPAIGN_FIELDS = (
    "product_group",
    "description",
    "selection",
    "message_tiers",
    "suppression",
    "holdout_share",
    "holdout_salt",
)
TIER_FIELDS = ("tier", "min_score", "deciles")
MAX_HOLDOUT_SHARE = 0.5
DEFAULT_HOLDOUT_SHARE = 0.1
DEFAULT_HOLDOUT_SALT = "propensity"

#: Exclusion reasons in the order they are checked: a customer carries the first that applies.
EXCLUSION_ORDER = ("vip", "unsubscribed", "no_opt_in", "contacted_recently", "frequency_cap")


@dataclass(frozen=True)
class TierRule:
    """A customer gets `tier` when every condition given holds (none given: everybody)."""

    tier: str
    min_score: float | None = None
    deciles: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Campaign:
    """One validated campaign (see the module docstring for the YAML form)."""

    campaign_id: str
    product_group: str
    selection_type: str
    selection_threshold: float | None = None
    selection_top_k: int | None = None
    selection_deciles: tuple[int, ...] | None = None
    message_tiers: tuple[TierRule, ...] = ()
    exclude_vip: bool = False
    exclude_unsubscribed_or_no_opt_in: bool = True
    contacted_within_days: int | None = None
    frequency_cap: int | None = None
    holdout_share: float = DEFAULT_HOLDOUT_SHARE
    holdout_salt: str = DEFAULT_HOLDOUT_SALT
    description: str = field(default="", compare=False)


def _where(campaign_id: str, what: str) -> str:
    return f"campaign {campaign_id!r}: {what}"


def _check_keys(value: Mapping, allowed: tuple[str, ...], where: str) -> None:
    unknown = [k for k in value if k not in allowed]
    if unknown:
        raise ConfigError(
            f"{where}: unknown field {unknown[0]!r}; allowed fields are {', '.join(allowed)}"
        )


def _number(value: object, where: str, *, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise ConfigError(f"{where} must be a number between {low} and {high}, got {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"{where} must be between {low} and {high}, got {value!r}")
    return float(value)


def _integer(value: object, where: str, *, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{where} must be a whole number >= {low}, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f">= {low}"
        raise ConfigError(f"{where} must be {bound}, got {value!r}")
    return value


def _deciles(value: object, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where} must be a non-empty list of deciles 1..10, e.g. [1, 2]")
    deciles = tuple(_integer(d, f"{where} entry", low=1, high=10) for d in value)
    if len(set(deciles)) != len(deciles):
        raise ConfigError(f"{where} lists a decile twice: {list(deciles)}")
    return tuple(sorted(deciles))


def _boolean(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{where} must be true or false, got {value!r}")
    return value


def _parse_selection(campaign_id: str, value: object) -> dict[str, object]:
    where = _where(campaign_id, "selection")
    if not isinstance(value, Mapping) or len(value) != 1:
        raise ConfigError(
            f"{where} must give exactly one of {', '.join(SELECTION_TYPES)}, e.g. "
            "`selection: {deciles: [1, 2]}`, `{threshold: 0.3}` or `{top_k: 5000}`"
        )
    ((kind, arg),) = value.items()
    if kind == "threshold":
        return {
            "selection_type": kind,
            "selection_threshold": _number(arg, f"{where} threshold", low=0.0, high=1.0),
        }
    if kind == "top_k":
        return {"selection_type": kind, "selection_top_k": _integer(arg, f"{where} top_k", low=1)}
    if kind == "deciles":
        return {"selection_type": kind, "selection_deciles": _deciles(arg, f"{where} deciles")}
    raise ConfigError(
        f"{where}: unknown selection {kind!r}; use one of {', '.join(SELECTION_TYPES)}"
    )


def _parse_tiers(campaign_id: str, value: object) -> tuple[TierRule, ...]:
    where = _where(campaign_id, "message_tiers")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ConfigError(
            f"{where} must be an ordered list of rules such as "
            "`- {tier: exclusive_offer, min_score: 0.5}`"
        )
    rules: list[TierRule] = []
    for i, rule in enumerate(value, start=1):
        at = f"{where} rule {i}"
        if not isinstance(rule, Mapping):
            raise ConfigError(f"{at} must be a mapping with `tier` and optional conditions")
        _check_keys(rule, TIER_FIELDS, at)
        if "tier" not in rule:
            raise ConfigError(f"{at}: `tier` is required (the message tier's name)")
        tier = rule["tier"]
        if not isinstance(tier, str) or not TIER_NAME.match(tier):
            raise ConfigError(
                f"{at}: tier {tier!r} must be 1-40 lowercase letters, digits or underscores, "
                "starting with a letter (e.g. exclusive_offer)"
            )
        if rules and rules[-1].min_score is None and rules[-1].deciles is None:
            raise ConfigError(
                f"{at} ({tier!r}) can never match: rule {i - 1} ({rules[-1].tier!r}) has no "
                "condition and matches everybody. Put the catch-all rule last."
            )
        min_score = rule.get("min_score")
        deciles = rule.get("deciles")
        rules.append(
            TierRule(
                tier=tier,
                min_score=None
                if min_score is None
                else _number(min_score, f"{at} min_score", low=0.0, high=1.0),
                deciles=None if deciles is None else _deciles(deciles, f"{at} deciles"),
            )
        )
    return tuple(rules)


def _parse_suppression(campaign_id: str, value: object) -> dict[str, object]:
    where = _where(campaign_id, "suppression")
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping of {', '.join(SUPPRESSION_FIELDS)}")
    _check_keys(value, SUPPRESSION_FIELDS, where)
    out: dict[str, object] = {}
    for name in ("exclude_vip", "exclude_unsubscribed_or_no_opt_in"):
        if name in value:
            out[name] = _boolean(value[name], f"{where} {name}")
    for name in ("contacted_within_days", "frequency_cap"):
        if value.get(name) is not None:
            out[name] = _integer(value[name], f"{where} {name}", low=1, high=3650)
    return out


def parse_campaign(campaign_id: object, spec: object) -> Campaign:
    """Validate one campaign's mapping; raises `ConfigError` saying what to fix."""
    if not isinstance(campaign_id, str) or not CAMPAIGN_ID.match(campaign_id):
        raise ConfigError(
            f"campaign id {campaign_id!r} is not allowed: use 1-64 lowercase letters, digits, "
            "'_', '-' or '.', starting with a letter or digit (e.g. 'wine_2025_winter')"
        )
    if not isinstance(spec, Mapping):
        raise ConfigError(_where(campaign_id, "must be a mapping with product_group and selection"))
    _check_keys(spec, CAMPAIGN_FIELDS, _where(campaign_id, "config"))
    for required in ("product_group", "selection"):
        if required not in spec:
            raise ConfigError(_where(campaign_id, f"`{required}` is required"))
    try:
        group = validate_group_name(spec["product_group"])
    except ConfigError as exc:
        raise ConfigError(_where(campaign_id, str(exc))) from exc
    description = spec.get("description") or ""
    if not isinstance(description, str):
        raise ConfigError(_where(campaign_id, "description must be text"))
    share = spec.get("holdout_share", DEFAULT_HOLDOUT_SHARE)
    share = _number(share, _where(campaign_id, "holdout_share"), low=0.0, high=MAX_HOLDOUT_SHARE)
    salt = spec.get("holdout_salt", DEFAULT_HOLDOUT_SALT)
    if isinstance(salt, bool) or not isinstance(salt, str | int) or str(salt) == "":
        raise ConfigError(
            _where(campaign_id, f"holdout_salt must be a non-empty string, got {salt!r}")
        )
    return Campaign(
        campaign_id=campaign_id,
        product_group=group,
        message_tiers=_parse_tiers(campaign_id, spec.get("message_tiers")),
        holdout_share=share,
        holdout_salt=str(salt),
        description=description,
        **_parse_selection(campaign_id, spec["selection"]),  # type: ignore[arg-type]
        **_parse_suppression(campaign_id, spec.get("suppression")),  # type: ignore[arg-type]
    )


def parse_campaigns(config: Mapping[str, object]) -> list[Campaign]:
    """Validate a parsed YAML mapping `{campaigns: {campaign_id: {...}}}`."""
    campaigns = config.get("campaigns") if isinstance(config, Mapping) else None
    if not isinstance(campaigns, Mapping):
        raise ConfigError("campaign config must have a top-level mapping `campaigns:`")
    return [parse_campaign(cid, spec) for cid, spec in campaigns.items()]


def read_campaigns(path: Path | str) -> list[Campaign]:
    """Read and validate a campaign YAML file."""
    return parse_campaigns(read_yaml_file(path, what="campaign config") or {})


_DECILES = pa.list_(pa.int32())
_TIER = pa.struct(
    [
        pa.field("message_tier", pa.string()),
        pa.field("min_score", pa.float64()),
        pa.field("deciles", _DECILES),
    ]
)
#: The schema of `raw.campaign_config`.
CAMPAIGN_SCHEMA = pa.schema(
    [
        pa.field("campaign_id", pa.string()),
        pa.field("product_group", pa.string()),
        pa.field("description", pa.string()),
        pa.field("selection_type", pa.string()),
        pa.field("selection_threshold", pa.float64()),
        pa.field("selection_top_k", pa.int64()),
        pa.field("selection_deciles", _DECILES),
        pa.field("message_tiers", pa.list_(_TIER)),
        pa.field("exclude_vip", pa.bool_()),
        pa.field("exclude_unsubscribed_or_no_opt_in", pa.bool_()),
        pa.field("contacted_within_days", pa.int32()),
        pa.field("frequency_cap", pa.int32()),
        pa.field("holdout_share", pa.float64()),
        pa.field("holdout_salt", pa.string()),
    ]
)


def campaigns_to_arrow(campaigns: list[Campaign]) -> pa.Table:
    """One row per campaign, in the schema of `raw.campaign_config` (empty list: empty table)."""
    rows = [
        {
            "campaign_id": c.campaign_id,
            "product_group": c.product_group,
            "description": c.description,
            "selection_type": c.selection_type,
            "selection_threshold": c.selection_threshold,
            "selection_top_k": c.selection_top_k,
            "selection_deciles": list(c.selection_deciles) if c.selection_deciles else None,
            "message_tiers": [
                {
                    "message_tier": t.tier,
                    "min_score": t.min_score,
                    "deciles": list(t.deciles) if t.deciles else None,
                }
                for t in c.message_tiers
            ],
            "exclude_vip": c.exclude_vip,
            "exclude_unsubscribed_or_no_opt_in": c.exclude_unsubscribed_or_no_opt_in,
            "contacted_within_days": c.contacted_within_days,
            "frequency_cap": c.frequency_cap,
            "holdout_share": c.holdout_share,
            "holdout_salt": c.holdout_salt,
        }
        for c in campaigns
    ]
    return pa.Table.from_pylist(rows, schema=CAMPAIGN_SCHEMA)


def write_campaigns(con, campaigns: list[Campaign]) -> int:
    """Replace `raw.campaign_config` with `campaigns` (atomically); returns the row count."""
    from models_py.ingest._raw import write_raw_tables

    ids = [c.campaign_id for c in campaigns]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise ConfigError(f"campaign ids must be unique; repeated: {', '.join(duplicates)}")
    n = write_raw_tables(con, {CAMPAIGN_TABLE: campaigns_to_arrow(campaigns)})[CAMPAIGN_TABLE]
    logger.info("wrote %d campaigns to raw.%s", n, CAMPAIGN_TABLE)
    return n


def set_campaigns(warehouse: Path | str, path: Path | str) -> list[Campaign]:
    """Validate the campaign YAML at `path` and make it the warehouse's campaign configuration.

    Nothing is written when the file is invalid (`ConfigError`); the audiences change at the next
    `dbt build` (or `dbt run --select dim_campaigns+`).
    """
    from models_py._warehouse import connect

    campaigns = read_campaigns(path)
    con = connect(warehouse)
    try:
        write_campaigns(con, campaigns)
    finally:
        con.close()
    return campaigns
