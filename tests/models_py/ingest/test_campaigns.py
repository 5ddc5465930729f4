"""Campaign configuration: YAML -> validated campaigns -> raw.campaign_config; bad input gets a
ConfigError saying what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from models_py._errors import ConfigError
from models_py._warehouse import connect
from models_py.ingest._campaigns import (
    DEFAULT_CAMPAIGNS,
    Campaign,
    TierRule,
    parse_campaigns,
    read_campaigns,
    set_campaigns,
    write_campaigns,
)
from models_py.ingest._groups import parse_group_rules


def _one(**spec: object) -> dict:
    return {"campaigns": {"c1": {"product_group": "wine", "selection": {"top_k": 10}, **spec}}}


def test_parse_full_campaign_and_defaults() -> None:
    (full,) = parse_campaigns(
        _one(
            selection={"deciles": [2, 1]},
            message_tiers=[
                {"tier": "exclusive_offer", "min_score": 0.5},
                {"tier": "re_engagement", "deciles": [9, 10]},
                {"tier": "standard_offer"},
            ],
            suppression={"exclude_vip": True, "contacted_within_days": 7, "frequency_cap": 4},
            holdout_share=0.25,
            holdout_salt=2025,
        )
    )
    assert full == Campaign(
        campaign_id="c1",
        product_group="wine",
        selection_type="deciles",
        selection_deciles=(1, 2),
        message_tiers=(
            TierRule("exclusive_offer", min_score=0.5),
            TierRule("re_engagement", deciles=(9, 10)),
            TierRule("standard_offer"),
        ),
        exclude_vip=True,
        exclude_unsubscribed_or_no_opt_in=True,
        contacted_within_days=7,
        frequency_cap=4,
        holdout_share=0.25,
        holdout_salt="2025",
    )
    (minimal,) = parse_campaigns(_one())
    assert (minimal.selection_type, minimal.selection_top_k) == ("top_k", 10)
    assert minimal.holdout_share == 0.1 and minimal.holdout_salt == "propensity"
    assert not minimal.exclude_vip and minimal.exclude_unsubscribed_or_no_opt_in
    assert minimal.contacted_within_days is None and minimal.frequency_cap is None
    (threshold,) = parse_campaigns(_one(selection={"threshold": 0}))
    assert threshold.selection_threshold == 0.0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "top-level mapping `campaigns:`"),
        ({"campaigns": {"Wine Push": {}}}, "campaign id 'Wine Push' is not allowed"),
        ({"campaigns": {"c1": ["wine"]}}, "must be a mapping"),
        ({"campaigns": {"c1": {"selection": {"top_k": 1}}}}, "`product_group` is required"),
        ({"campaigns": {"c1": {"product_group": "wine"}}}, "`selection` is required"),
        (_one(product_group="Wine"), "product group name 'Wine' is not allowed"),
        (_one(product_group="x'; drop table raw.orders; --"), "is not allowed"),
        (_one(audience="all"), "unknown field 'audience'"),
        (_one(selection={"top_k": 10, "threshold": 0.5}), "exactly one of"),
        (_one(selection="top"), "exactly one of"),
        (_one(selection={"best": 3}), "unknown selection 'best'"),
        (_one(selection={"threshold": 1.5}), "threshold must be between 0.0 and 1.0, got 1.5"),
        (_one(selection={"threshold": "high"}), "threshold must be a number"),
        (_one(selection={"threshold": True}), "threshold must be a number"),
        (_one(selection={"top_k": 0}), "top_k must be >= 1, got 0"),
        (_one(selection={"top_k": 2.5}), "top_k must be a whole number"),
        (_one(selection={"deciles": []}), "non-empty list of deciles"),
        (_one(selection={"deciles": [0, 1]}), "must be between 1 and 10, got 0"),
        (_one(selection={"deciles": [1, 1]}), "lists a decile twice"),
        (_one(holdout_share=0.6), "holdout_share must be between 0.0 and 0.5, got 0.6"),
        (_one(holdout_share=-0.1), "holdout_share must be between"),
        (_one(holdout_share="10%"), "holdout_share must be a number"),
        (_one(holdout_salt=""), "holdout_salt must be a non-empty string"),
        (_one(suppression={"exclude_vips": True}), "unknown field 'exclude_vips'"),
        (_one(suppression={"exclude_vip": "yes"}), "exclude_vip must be true or false"),
        (_one(suppression={"contacted_within_days": 0}), "contacted_within_days must be between"),
        (_one(suppression={"frequency_cap": "3"}), "frequency_cap must be a whole number"),
        (_one(suppression=["exclude_vip"]), "suppression must be a mapping"),
        (_one(message_tiers={"tier": "a"}), "must be an ordered list of rules"),
        (_one(message_tiers=[{"min_score": 0.5}]), "rule 1: `tier` is required"),
        (_one(message_tiers=[{"tier": "Gold"}]), "tier 'Gold' must be 1-40 lowercase"),
        (_one(message_tiers=[{"tier": "a", "max_score": 1}]), "unknown field 'max_score'"),
        (_one(message_tiers=[{"tier": "a", "min_score": 2}]), "min_score must be between"),
        (_one(message_tiers=[{"tier": "a", "deciles": [11]}]), "between 1 and 10, got 11"),
        (
            _one(message_tiers=[{"tier": "everyone"}, {"tier": "gold", "min_score": 0.9}]),
            "rule 2 ('gold') can never match: rule 1 ('everyone') has no condition",
        ),
    ],
)
def test_bad_campaign_config_is_a_config_error(config: dict, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_campaigns(config)
    assert message in str(info.value)
    if config.get("campaigns") and "c1" in config["campaigns"]:
        assert "campaign 'c1'" in str(info.value)  # the message names the campaign


def test_read_campaigns_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        read_campaigns(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("campaigns: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        read_campaigns(bad)


def test_default_campaigns_cover_the_synthetic_groups() -> None:
    campaigns = read_campaigns(DEFAULT_CAMPAIGNS)
    synth = Path(DEFAULT_CAMPAIGNS).parent.parent / "synth" / "groups.yml"
    groups = {r.product_group for r in parse_group_rules(yaml.safe_load(synth.read_text()))}
    assert {c.product_group for c in campaigns} == groups | {"any"}
    assert {c.selection_type for c in campaigns} == {"threshold", "top_k", "deciles"}


def test_write_campaigns_replaces_the_table_atomically(tmp_path: Path) -> None:
    con = connect(tmp_path / "wh.duckdb")
    try:
        assert write_campaigns(con, read_campaigns(DEFAULT_CAMPAIGNS)) == 11
        types = {r[0]: r[1] for r in con.execute("describe raw.campaign_config").fetchall()}
        assert {k: types[k] for k in ("selection_deciles", "message_tiers")} == {
            "selection_deciles": "INTEGER[]",
            "message_tiers": "STRUCT(message_tier VARCHAR, min_score DOUBLE, deciles INTEGER[])[]",
        }
        row = con.execute(
            "select selection_type, selection_deciles, message_tiers[1].message_tier, "
            "contacted_within_days, holdout_salt from raw.campaign_config "
            "where campaign_id = 'wine_top_deciles'"
        ).fetchone()
        assert row == ("deciles", [1, 2], "exclusive_offer", 7, "2025-winter")
        # duplicate ids are refused before anything is written: the old table stays
        (one,) = parse_campaigns(_one())
        with pytest.raises(ConfigError, match="repeated: c1"):
            write_campaigns(con, [one, one])
        assert con.execute("select count(*) from raw.campaign_config").fetchone() == (11,)
        assert write_campaigns(con, [one]) == 1
        assert con.execute("select campaign_id from raw.campaign_config").fetchall() == [("c1",)]
        assert write_campaigns(con, []) == 0  # no campaigns: an empty table, same columns
        assert len(con.execute("describe raw.campaign_config").fetchall()) == 14
    finally:
        con.close()


def test_set_campaigns_writes_valid_files_and_nothing_for_invalid_ones(tmp_path: Path) -> None:
    warehouse = tmp_path / "wh.duckdb"
    campaigns = set_campaigns(warehouse, DEFAULT_CAMPAIGNS)
    assert len(campaigns) == 11
    bad = tmp_path / "bad.yml"
    bad.write_text("campaigns:\n  c1: {product_group: wine, selection: {top_k: -5}}\n")
    with pytest.raises(ConfigError, match="campaign 'c1': selection top_k must be >= 1, got -5"):
        set_campaigns(warehouse, bad)
    con = connect(warehouse, read_only=True)
    try:
        assert con.execute("select count(*) from raw.campaign_config").fetchone() == (11,)
    finally:
        con.close()
