"""Audience marts built by real dbt on a hand-made warehouse.

The scores are written directly into a table shaped like `marts.fct_propensity_scores` (deciles
computed the way the scoring model computes them), so these tests need neither trained models nor
the scoring UDF: dbt builds only the staging views, dim_product_groups and the audience models.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from models_py._dbt import run_dbt
from models_py._errors import DbtRunError
from models_py._settings import Settings
from models_py._warehouse import connect
from models_py.ingest._campaigns import parse_campaigns, write_campaigns
from models_py.ingest._groups import parse_group_rules, rules_to_arrow
from tests.conftest import empty_raw, write_tiny_warehouse

pytestmark = pytest.mark.slow

T = dt.date(2025, 3, 1)  # latest scoring cutoff
T0 = dt.datetime(2025, 3, 1)
OLD = dt.date(2025, 2, 1)  # an earlier cutoff whose scores must be ignored
N = 2000
AUDIENCE_MODELS = (
    "stg_raw__customers stg_raw__email_events stg_raw__products stg_raw__product_group_rules "
    "int_products_mapped_to_groups dim_product_groups "
    "dim_campaigns dim_customer_propensity fct_campaign_audiences"
)
BUILD = ["build", "--select", AUDIENCE_MODELS]

#: customer -> the exclusion reason expected with every suppression rule on (see _email_events).
EXPECTED_REASONS = {
    1: "vip",  # VIP and unsubscribed: the first rule wins
    2: "unsubscribed",  # unsubscribed and not opted in
    3: "no_opt_in",
    4: "contacted_recently",  # sent 3 days before T, and frequency-capped too
    5: "frequency_cap",  # 4 sends 10-25 days before T
    9: "contacted_recently",  # sent exactly 7 days before T (window [T - 7d, T))
}

CAMPAIGNS = {
    "campaigns": {
        "wine_all_rules": {
            "product_group": "wine",
            "selection": {"threshold": 0.0},
            "suppression": {
                "exclude_vip": True,
                "exclude_unsubscribed_or_no_opt_in": True,
                "contacted_within_days": 7,
                "frequency_cap": 4,
            },
            "holdout_share": 0.0,
        },
        "wine_no_rules": {
            "product_group": "wine",
            "selection": {"threshold": 0.0},
            "suppression": {"exclude_vip": False, "exclude_unsubscribed_or_no_opt_in": False},
            "holdout_share": 0.0,
        },
        "wine_threshold": {"product_group": "wine", "selection": {"threshold": 0.6}},
        "wine_top_k": {"product_group": "wine", "selection": {"top_k": 137}},
        "sweets_deciles": {
            "product_group": "sweets",
            "selection": {"deciles": [1, 2]},
            "message_tiers": [
                {"tier": "exclusive_offer", "min_score": 0.8},
                {"tier": "mid_offer", "min_score": 0.3, "deciles": [3, 4, 5]},
                {"tier": "re_engagement", "deciles": [9, 10]},
                {"tier": "standard_offer"},
            ],
        },
        "any_holdout": {
            "product_group": "any",
            "selection": {"threshold": 0.0},
            "holdout_share": 0.2,
            "holdout_salt": "s1",
        },
    }
}


def _customers() -> pa.Table:
    ids = np.arange(1, N + 1, dtype=np.int64)
    vip = np.isin(ids, [1, 100, 200])
    opt_in = ~np.isin(ids, [2, 3])
    return pa.table(
        {
            "customer_id": ids,
            "created_at": [dt.datetime(2024, 1, 1)] * N,
            "country": ["UK"] * N,
            "email_opt_in": opt_in,
            "is_vip": vip,
        }
    )


def _email_events() -> pa.Table:
    days = dt.timedelta(days=1)
    rows = [
        (1, "unsubscribe", T0 - 40 * days),
        (2, "unsubscribe", T0 - 2 * days),
        (4, "sent", T0 - 3 * days),
        *[(4, "sent", T0 - d * days) for d in (10, 15, 20, 25)],
        *[(5, "sent", T0 - d * days) for d in (10, 15, 20, 25)],
        *[(6, "sent", T0 - d * days) for d in (10, 15, 20)],  # 3 sends: below the cap of 4
        (7, "sent", T0),  # at the cutoff: not history
        (7, "sent", T0 + 2 * days),
        (7, "unsubscribe", T0),  # at the cutoff: not yet unsubscribed
        (8, "sent", T0 - 8 * days),  # outside the 7-day window
        (8, "open", T0 - 1 * days),  # opens are not contacts
        (9, "sent", T0 - 7 * days),  # exactly on the window's edge: inside
        *[(10, "sent", T0 - d * days) for d in (31, 32, 33, 34, 35)],  # older than 30 days
    ]
    return pa.table(
        {
            "customer_id": pa.array([r[0] for r in rows], pa.int64()),
            "campaign_id": pa.array(["c"] * len(rows), pa.string()),
            "event_type": pa.array([r[1] for r in rows], pa.string()),
            "occurred_at": pa.array([r[2] for r in rows], pa.timestamp("us")),
        }
    )


def _write_scores(con: duckdb.DuckDBPyConnection, *, empty: bool = False) -> None:
    """marts.fct_propensity_scores as the scoring model writes it (deciles by ntile)."""
    rng = np.random.default_rng(11)
    rows: dict[str, list] = {"customer_id": [], "product_group": [], "as_of_date": [], "score": []}
    # sweets is scored for customers 1..1500 only and alpha (first in name order, so the wide
    # profile's first join input) for 1001..N only: null columns in the wide profile; wine
    # scores are rounded to two decimals so top_k meets ties at its boundary.
    plan = {"any": (1, N), "wine": (1, N), "sweets": (1, 1500), "alpha": (1001, N)}
    for as_of in (OLD, T):
        for group, (first, last) in plan.items():
            n = last - first + 1
            score = rng.random(n)
            if group == "wine":
                score = np.round(score, 2)
            rows["customer_id"] += list(range(first, last + 1))
            rows["product_group"] += [group] * n
            rows["as_of_date"] += [as_of] * n
            rows["score"] += score.tolist()
    frame = pa.table(
        {
            "customer_id": pa.array(rows["customer_id"], pa.int64()),
            "product_group": pa.array(rows["product_group"], pa.string()),
            "as_of_date": pa.array(rows["as_of_date"], pa.date32()),
            "score": pa.array(rows["score"], pa.float64()),
        }
    )
    con.execute("create schema if not exists marts")
    con.register("_scores", frame)
    con.execute(
        """
        create or replace table marts.fct_propensity_scores as
        select
            customer_id, product_group, as_of_date, 'model_' || product_group as model_id, score,
            cast(ntile(10) over (
                partition by product_group, as_of_date order by score desc, customer_id asc
            ) as integer) as decile,
            current_timestamp::timestamp as scored_at
        from _scores
        """
        + (" where false" if empty else "")
    )
    con.unregister("_scores")


def _warehouse(path: Path, *, campaigns: dict | None, empty_scores: bool = False) -> Settings:
    groups = {"wine": {"category": ["^wine$"]}, "sweets": {"category": ["^sweets$"]}}
    settings = write_tiny_warehouse(
        path,
        customers=_customers(),
        orders=empty_raw("orders"),
        order_lines=empty_raw("order_lines"),
        products=pa.table(
            {
                "product_id": ["a", "b"],
                "product_name": ["Rioja", "Fudge"],
                "category": ["wine", "sweets"],
            }
        ),
        email_events=_email_events(),
        product_group_rules=rules_to_arrow(parse_group_rules({"product_groups": groups})),
    )
    con = connect(path)
    try:
        _write_scores(con, empty=empty_scores)
        if campaigns is not None:
            write_campaigns(con, parse_campaigns(campaigns))
    finally:
        con.close()
    return settings


def _query(settings: Settings, sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def _audience(settings: Settings, campaign_id: str) -> dict[int, dict]:
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        cur = con.execute(
            "select * from marts.fct_campaign_audiences where campaign_id = ? order by customer_id",
            [campaign_id],
        )
        names = [d[0] for d in cur.description]
        return {r[1]: dict(zip(names, r, strict=True)) for r in cur.fetchall()}
    finally:
        con.close()


def _latest_scores(settings: Settings, group: str) -> dict[int, tuple[float, int]]:
    rows = _query(
        settings,
        "select customer_id, score, decile from marts.fct_propensity_scores "
        "where product_group = ? and as_of_date = ?",
        [group, T],
    )
    return {r[0]: (r[1], r[2]) for r in rows}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    settings = _warehouse(tmp_path_factory.mktemp("audiences") / "wh.duckdb", campaigns=CAMPAIGNS)
    run_dbt(settings, BUILD)
    return settings


def test_suppression_rules_exclude_exactly_with_the_first_matching_reason(built: Settings) -> None:
    audience = _audience(built, "wine_all_rules")
    assert len(audience) == N  # every customer scored for wine at the latest cutoff
    assert {r["as_of_date"] for r in audience.values()} == {T}
    reasons = {c: r["exclusion_reason"] for c, r in audience.items() if r["exclusion_reason"]}
    expected = {**EXPECTED_REASONS, 100: "vip", 200: "vip"}
    assert reasons == expected
    # history is strictly before the cutoff, sends in [T - 30d, T)
    assert audience[5]["email_sends_30d"] == 4
    assert audience[6]["email_sends_30d"] == 3
    assert audience[7]["email_sends_30d"] == 0 and audience[7]["last_sent_at"] is None
    assert audience[10]["email_sends_30d"] == 0
    assert audience[8]["last_sent_at"] == T0 - dt.timedelta(days=8)
    # selected = eligible, not excluded, not held out (threshold 0 and no hold-out: all eligible)
    assert all(r["is_eligible"] and not r["is_holdout"] for r in audience.values())
    assert {c for c, r in audience.items() if r["is_selected"]} == set(range(1, N + 1)) - set(
        expected
    )
    # with the flags off only the rules left on apply (none here)
    no_rules = _audience(built, "wine_no_rules")
    assert all(r["exclusion_reason"] is None for r in no_rules.values())
    assert all(r["is_selected"] for r in no_rules.values())


def test_threshold_top_k_and_decile_selection(built: Settings) -> None:
    wine = _latest_scores(built, "wine")
    threshold = _audience(built, "wine_threshold")
    assert {c for c, r in threshold.items() if r["is_eligible"]} == {
        c for c, (s, _) in wine.items() if s >= 0.6
    }
    # top_k: exactly k, ties at the boundary broken by customer_id ascending
    top_k = _audience(built, "wine_top_k")
    eligible = {c for c, r in top_k.items() if r["is_eligible"]}
    ranked = sorted(wine, key=lambda c: (-wine[c][0], c))
    assert len(eligible) == 137
    assert eligible == set(ranked[:137])
    boundary = wine[ranked[136]][0]
    assert sum(1 for s, _ in wine.values() if s == boundary) > 1  # the test really meets ties
    assert all(top_k[c]["score_rank"] == i + 1 for i, c in enumerate(ranked))
    sweets = _latest_scores(built, "sweets")
    deciles = _audience(built, "sweets_deciles")
    assert set(deciles) == set(sweets)
    assert {c for c, r in deciles.items() if r["is_eligible"]} == {
        c for c, (_, d) in sweets.items() if d in (1, 2)
    }
    assert all(r["is_selected"] <= r["is_eligible"] for r in deciles.values())


def test_message_tiers_take_the_first_matching_rule(built: Settings) -> None:
    sweets = _latest_scores(built, "sweets")
    audience = _audience(built, "sweets_deciles")

    def expected(score: float, decile: int) -> str:
        if score >= 0.8:
            return "exclusive_offer"
        if score >= 0.3 and decile in (3, 4, 5):
            return "mid_offer"
        if decile in (9, 10):
            return "re_engagement"
        return "standard_offer"

    got = {c: r["message_tier"] for c, r in audience.items()}
    assert got == {c: expected(s, d) for c, (s, d) in sweets.items()}
    assert set(got.values()) == {"exclusive_offer", "mid_offer", "re_engagement", "standard_offer"}
    # a campaign without tiers has no message tier
    assert {r["message_tier"] for r in _audience(built, "wine_threshold").values()} == {None}


def _bucket(salt: str, campaign_id: str, customer_id: int) -> int:
    digest = hashlib.md5(f"{salt}|{campaign_id}|{customer_id}".encode()).hexdigest()
    return int(digest[:8], 16) % 10000


def test_holdout_share_is_hash_based_deterministic_and_salted(built: Settings) -> None:
    audience = _audience(built, "any_holdout")
    held = {c for c, r in audience.items() if r["is_holdout"]}
    share = len(held) / len(audience)
    assert abs(share - 0.2) < 0.04  # 4 binomial standard deviations at n = 2000
    # the documented formula, recomputed here
    assert held == {c for c in audience if _bucket("s1", "any_holdout", c) < 2000}
    assert not any(audience[c]["is_selected"] for c in held)
    # independent of the score: the held-out share is about the same in both halves
    scores = _latest_scores(built, "any")
    median = float(np.median([s for s, _ in scores.values()]))
    high = [c for c in audience if scores[c][0] >= median]
    low = [c for c in audience if scores[c][0] < median]
    assert abs(len(held & set(high)) / len(high) - len(held & set(low)) / len(low)) < 0.06
    # another salt draws another control group; back to the first salt gives the same one again
    resalted = {
        "campaigns": {
            "any_holdout": {**CAMPAIGNS["campaigns"]["any_holdout"], "holdout_salt": "s2"}
        }
    }
    other = _rebuild_with(built, resalted)
    assert abs(len(other) / N - 0.2) < 0.04
    assert len(held & other) < 0.5 * len(held)  # about 0.2 * 0.2 * N overlap expected
    assert _rebuild_with(built, CAMPAIGNS) == held


def _rebuild_with(settings: Settings, campaigns: dict) -> set[int]:
    """Replace the campaign config, rebuild the audiences, return any_holdout's control group."""
    con = connect(settings.warehouse)
    try:
        write_campaigns(con, parse_campaigns(campaigns))
    finally:
        con.close()
    run_dbt(settings, ["run", "--select", "dim_campaigns fct_campaign_audiences"])
    return {c for c, r in _audience(settings, "any_holdout").items() if r["is_holdout"]}


def test_wide_profile_has_one_column_per_group_equal_to_the_long_table(built: Settings) -> None:
    con = duckdb.connect(str(built.warehouse), read_only=True)
    try:
        cur = con.execute("select * from marts.dim_customer_propensity order by customer_id")
        names = [d[0] for d in cur.description]
        rows = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    finally:
        con.close()
    assert names == [
        "customer_id",
        "as_of_date",
        "score_alpha",
        "score_any",
        "score_sweets",
        "score_wine",
        "decile_alpha",
        "decile_any",
        "decile_sweets",
        "decile_wine",
        "best_product_group",
        "best_score",
    ]
    assert len(rows) == N and {r["as_of_date"] for r in rows} == {T}
    long = {g: _latest_scores(built, g) for g in ("alpha", "any", "sweets", "wine")}
    for row in rows:
        c = row["customer_id"]
        for group, scores in long.items():
            assert row[f"score_{group}"] == (scores[c][0] if c in scores else None)
            assert row[f"decile_{group}"] == (scores[c][1] if c in scores else None)
        candidates = {g: long[g][c][0] for g in ("alpha", "sweets", "wine") if c in long[g]}
        best = max(candidates.values())
        assert row["best_score"] == best
        assert row["best_product_group"] == min(g for g, s in candidates.items() if s == best)


def test_empty_warehouse_builds_empty_and_an_unknown_group_fails_the_dbt_test(
    tmp_path: Path,
) -> None:
    # no scores yet and no campaign table: every model builds, empty
    settings = _warehouse(tmp_path / "empty.duckdb", campaigns=None, empty_scores=True)
    run_dbt(settings, BUILD)
    con = duckdb.connect(str(settings.warehouse), read_only=True)
    try:
        profile = con.execute("select * from marts.dim_customer_propensity")
        assert [d[0] for d in profile.description] == [
            "customer_id",
            "as_of_date",
            "best_product_group",
            "best_score",
        ]
        assert profile.fetchall() == []
        assert con.execute("select count(*) from marts.dim_campaigns").fetchone() == (0,)
        assert con.execute("select count(*) from marts.fct_campaign_audiences").fetchone() == (0,)
    finally:
        con.close()
    # a campaign naming a group the warehouse does not have fails the test, with a message
    con = connect(settings.warehouse)
    try:
        config = {"campaigns": {"beer_push": {"product_group": "beer", "selection": {"top_k": 1}}}}
        write_campaigns(con, parse_campaigns(config))
    finally:
        con.close()
    with pytest.raises(DbtRunError) as info:
        run_dbt(settings, ["build", "--select", "dim_campaigns"])
    message = str(info.value)
    assert "dim_campaigns_product_group_is_known" in message
    assert "product_group beer in dim_campaigns has no match" in message
    assert "not in marts.dim_product_groups" in message
    assert "propensity groups set" in message
