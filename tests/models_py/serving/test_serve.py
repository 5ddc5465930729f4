"""`propensity serve` as a client sees it: a real uvicorn process on loopback over the snapshot a
daily run published from a small generated warehouse; answers compared with the warehouse's own
tables, and every bad input of docs/serving.md answered with its status and message while the
service stays up."""

from __future__ import annotations

import json
import shutil
import threading
import time

import duckdb
import httpx
import numpy as np
import pytest

from models_py.cli import main
from models_py.serving import POINTER
from tests.models_py.operations.daily_fixtures import query
from tests.models_py.serving.serving_fixtures import (
    API_KEY,
    Server,
    free_port,
    serve_process,
    served_warehouse,
)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    return served_warehouse(tmp_path_factory, "serve")


@pytest.fixture(scope="module")
def server(warehouse):
    srv = Server(warehouse)
    yield srv
    srv.stop()


def champions(warehouse) -> dict[str, str]:
    return dict(
        query(
            warehouse,
            "select product_group, model_id from ml.model_aliases where alias = 'champion'",
        )
    )


# ------------------------------------------------------------------------------------ the key


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (None, "no API key: set PROPENSITY_API_KEY"),
        ("", "no API key: set PROPENSITY_API_KEY"),
        ("short", "PROPENSITY_API_KEY is 5 characters long; use at least 16"),
    ],
)
def test_the_service_refuses_to_start_without_a_usable_key(warehouse, key, message):
    process = serve_process(warehouse, api_key=key, port=free_port())
    try:
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 1
    assert err.startswith("error: " + message), err
    assert "does not start without one" in err or "did not start" in err


def test_a_missing_or_wrong_key_gets_401_and_no_data(server):
    for headers, detail in (
        ({}, "missing API key: send it in the X-API-Key header"),
        ({"X-API-Key": "x" * 30}, "wrong API key"),
        ({"X-API-Key": API_KEY[:-1]}, "wrong API key"),
    ):
        for method, path in (
            ("GET", "/customers/1/propensity"),
            ("GET", "/audiences/wine_top"),
            ("GET", "/health"),
            ("GET", "/models"),
            ("POST", "/score"),
        ):
            r = httpx.request(method, server.url + path, headers=headers, json={})
            assert r.status_code == 401, (path, r.text)
            assert r.json() == {"detail": detail}
            assert r.headers["www-authenticate"] == "X-API-Key"


def test_openapi_docs_are_served_without_the_key(server):
    spec = httpx.get(server.url + "/openapi.json").json()
    assert set(spec["paths"]) == {
        "/customers/{customer_id}/propensity",
        "/audiences/{campaign_id}",
        "/models",
        "/score",
        "/health",
    }
    assert spec["components"]["securitySchemes"]["APIKeyHeader"]["name"] == "X-API-Key"
    page = httpx.get(server.url + "/docs")
    assert page.status_code == 200 and "swagger-ui" in page.text


# ----------------------------------------------------------------------------------- lookups


def test_customer_lookup_is_the_warehouse_scores_of_the_latest_cutoff(server, warehouse):
    as_of = query(warehouse, "select max(as_of_date) from marts.fct_propensity_scores")[0][0]
    expected = query(
        warehouse,
        "select customer_id, product_group, model_id, score, decile "
        "from marts.fct_propensity_scores where as_of_date = ? and customer_id in (1, 17, 1999) "
        "order by 1, 2",
        [as_of],
    )
    best = dict(
        query(
            warehouse,
            "select customer_id, best_product_group from marts.dim_customer_propensity "
            "where customer_id in (1, 17, 1999)",
        )
    )
    assert len(expected) == 9
    for customer in (1, 17, 1999):
        r = server.client.get(f"/customers/{customer}/propensity")
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["customer_id"] == customer
        assert body["as_of_date"] == as_of.isoformat()
        assert body["best_group"] == best[customer]
        got = [
            (customer, g["product_group"], g["model_id"], g["score"], g["decile"])
            for g in body["groups"]
        ]
        assert got == [row for row in expected if row[0] == customer]
        reasons = query(
            warehouse,
            "select product_group, reason_rank, feature_name, feature_label, feature_value, "
            "contribution from marts.fct_score_reasons where customer_id = ? order by 1, 2",
            [customer],
        )
        assert reasons  # the served warehouse has reasons; values in memory are float32
        assert [
            (g["product_group"], r["rank"], r["feature"], r["label"], r["value"], r["contribution"])
            for g in body["groups"]
            for r in g["reasons"]
        ] == [(*r[:4], float(np.float32(r[4])), float(np.float32(r[5]))) for r in reasons]


@pytest.mark.parametrize(
    ("path", "status", "detail"),
    [
        ("/customers/999999/propensity", 404, "customer 999999 has no scores at cutoff"),
        ("/customers/-3/propensity", 404, "customer -3 has no scores at cutoff"),
        ("/customers/99999999999999999999/propensity", 404, "has no scores at cutoff"),
        ("/customers/abc/propensity", 422, "Input should be a valid integer"),
        ("/customers/1.5/propensity", 422, "Input should be a valid integer"),
        ("/customers/1e3/propensity", 422, "Input should be a valid integer"),
    ],
)
def test_unknown_and_malformed_customer_ids(server, path, status, detail):
    r = server.client.get(path)
    assert r.status_code == status, r.text
    assert detail in str(r.json()["detail"])


def test_audience_pages_concatenate_to_the_warehouse_audience(server, warehouse):
    expected = query(
        warehouse,
        "select customer_id, score_rank from marts.fct_campaign_audiences "
        "where campaign_id = 'wine_top' and is_selected order by score_rank",
    )
    assert len(expected) > 250
    got, after, pages = [], 0, 0
    while after is not None:
        r = server.client.get("/audiences/wine_top", params={"limit": 100, "after": after})
        assert r.status_code == 200, r.text
        body = r.json()
        assert body["total"] == len(expected) and body["product_group"] == "wine"
        got += [(c["customer_id"], c["score_rank"]) for c in body["customers"]]
        assert all(c["is_selected"] for c in body["customers"])
        after, pages = body["next_after"], pages + 1
    assert got == expected
    assert pages == -(-len(expected) // 100)
    everyone = server.client.get(
        "/audiences/wine_top", params={"limit": 1000, "selected_only": False}
    ).json()
    assert everyone["total"] == 2000 and everyone["customers"][0]["score_rank"] == 1


@pytest.mark.parametrize(
    ("params", "status", "detail"),
    [
        ({"limit": 0}, 422, "greater than or equal to 1"),
        ({"limit": 1001}, 422, "less than or equal to 1000"),
        ({"after": -1}, 422, "greater than or equal to 0"),
        ({"after": "x"}, 422, "valid integer"),
    ],
)
def test_bad_audience_paging(server, params, status, detail):
    r = server.client.get("/audiences/wine_top", params=params)
    assert r.status_code == status and detail in str(r.json()["detail"])


def test_unknown_campaign(server):
    r = server.client.get("/audiences/beer_week")
    assert r.status_code == 404
    assert r.json()["detail"].startswith("campaign 'beer_week' is not in the snapshot of ")
    assert "(campaigns: wine_top;" in r.json()["detail"]


def test_health_names_the_champions_and_the_data_freshness(server, warehouse):
    body = server.client.get("/health").json()
    assert body["status"] == "ok" and body["snapshot_error"] is None
    assert {m["product_group"]: m["model_id"] for m in body["models"]} == champions(warehouse)
    as_of, scored_at = query(
        warehouse,
        "select max(as_of_date), max(scored_at) from marts.fct_propensity_scores",
    )[0]
    assert body["as_of_date"] == as_of.isoformat()
    assert body["scored_at"] == scored_at.isoformat()
    assert (
        body["last_order_date"]
        == query(warehouse, "select max(cast(ordered_at as date)) from raw.orders")[0][
            0
        ].isoformat()
    )
    assert body["customers"] == 2000
    assert 0 <= body["snapshot_age_seconds"] < 3600


# ------------------------------------------------------------------------------- POST /score


def scoring_features(warehouse, group: str, names: list[str], customers: tuple[int, ...]):
    columns = ", ".join(f'cast("{n}" as float)' for n in names)
    rows = query(
        warehouse,
        f"select customer_id, {columns} from marts.fct_scoring_features "
        "where product_group = ? and customer_id in (select unnest(?)) order by 1",
        [group, list(customers)],
    )
    return {r[0]: list(r[1:]) for r in rows}


def test_posted_features_score_as_in_the_warehouse(server, warehouse):
    models = {m["product_group"]: m for m in server.client.get("/models").json()}
    for group in ("wine", "any"):
        names = models[group]["feature_names"]
        features = scoring_features(warehouse, group, names, (3, 40))
        stored = dict(
            query(
                warehouse,
                "select customer_id, score from marts.fct_propensity_scores where "
                "product_group = ? and customer_id in (3, 40) and as_of_date = "
                "(select max(as_of_date) from marts.fct_propensity_scores)",
                [group],
            )
        )
        for customer, vector in features.items():
            by_name = server.client.post(
                "/score",
                json={"product_group": group, "features": dict(zip(names, vector, strict=True))},
            )
            by_position = server.client.post(
                "/score", json={"product_group": group, "features": vector}
            )
            assert by_name.status_code == 200, by_name.text
            assert by_name.json() == by_position.json()
            body = by_name.json()
            assert body["model_id"] == champions(warehouse)[group]
            assert body["onnx_sha256"] == models[group]["onnx_sha256"]
            assert np.float32(body["score"]) == np.float32(stored[customer])
    statuses = {
        m["product_group"]: m["status"] for m in server.client.get("/health").json()["models"]
    }
    assert statuses["wine"] == "ok"


def test_bad_features_get_422_naming_the_feature(server):
    names = next(
        m["feature_names"]
        for m in server.client.get("/models").json()
        if m["product_group"] == "wine"
    )
    good = {n: 0 for n in names}

    def post(features, group="wine"):
        return server.client.post("/score", json={"product_group": group, "features": features})

    r = post([0.0] * 3)
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {
            "loc": ["body", "features"],
            "msg": f"expected {len(names)} feature values in the order of the model's "
            f"feature_names (GET /models), got 3: the first missing one is {names[3]!r}",
            "type": "feature_count",
        }
    ]
    r = post([0.0] * (len(names) + 2))
    assert r.status_code == 422 and "the 2 extra values start at position" in r.text

    r = post({**good, names[5]: "12"})
    assert r.status_code == 422
    assert r.json()["detail"] == [
        {
            "loc": ["body", "features", names[5]],
            "msg": f"feature {names[5]!r} must be a number, got str '12'",
            "type": "feature_type",
        }
    ]
    r = post({**good, names[0]: None, "colour": 1})
    details = {d["loc"][-1]: d["type"] for d in r.json()["detail"]}
    assert r.status_code == 422 and details == {
        names[0]: "feature_type",
        "colour": "feature_unknown",
    }
    missing = dict(good)
    del missing[names[-1]]
    r = post(missing)
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "features", names[-1]]
    r = post({**good, names[1]: 1e39})
    assert r.status_code == 422 and "finite float32" in r.text
    r = post([[1]] + [0] * (len(names) - 1))
    assert r.status_code == 422 and f"feature {names[0]!r} must be a number, got list" in r.text
    r = post(good, group="beer")
    assert r.status_code == 404 and "groups: any, sweets, wine" in r.text
    r = server.client.post("/score", json={"features": good})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "product_group"]
    r = server.client.post(
        "/score", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422
    assert server.client.get("/customers/1/propensity").status_code == 200  # still up


# ------------------------------------------------------------------- snapshots come and go


def wait_for_health(server, predicate, timeout: float = 30.0) -> dict:
    """/health once `predicate` holds (a new snapshot is opened in the background)."""
    deadline = time.monotonic() + timeout
    while True:
        health = server.client.get("/health").json()
        if predicate(health):
            return health
        assert time.monotonic() < deadline, health
        time.sleep(0.1)


def current_name(serving) -> str:
    return (serving / POINTER).read_text().strip()


def test_snapshots_swap_vanish_and_fail_their_sha_while_the_service_stays_up(
    warehouse, tmp_path, monkeypatch
):
    """An empty serving directory, a first snapshot, a snapshot whose champion bytes were
    changed, one that vanishes before it is opened, and publishes under load."""
    serving = tmp_path / "serving"
    own = tmp_path / "wh.duckdb"
    shutil.copy(warehouse, own)
    monkeypatch.setenv("PROPENSITY_SERVING_DIR", str(serving))
    server = Server(own, serving_dir=serving)
    try:
        # 1. nothing published yet: no data, a message saying what to run
        r = server.client.get("/customers/1/propensity")
        assert r.status_code == 503
        assert "no serving snapshot in" in r.json()["detail"]
        assert "`propensity run daily` or `propensity snapshot`" in r.json()["detail"]
        health = server.client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "no snapshot"

        # 2. published: picked up by the running service, no restart
        assert main(["--warehouse", str(own), "snapshot"]) == 0
        r = server.client.get("/customers/1/propensity")
        assert r.status_code == 200 and len(r.json()["groups"]) == 3
        first = server.client.get("/health").json()["snapshot"]

        # 3. the wine champion's bytes changed after registration: scoring wine is refused,
        # everything else keeps working
        con = duckdb.connect(str(own))
        con.execute(
            "update ml.model_registry set onnx_model = onnx_model || '\\x00'::blob "
            "where model_id = (select model_id from ml.model_aliases "
            "where product_group = 'wine' and alias = 'champion')"
        )
        con.close()
        assert main(["--warehouse", str(own), "snapshot"]) == 0
        wait_for_health(server, lambda h: h["snapshot"] == current_name(serving))
        names = next(
            m["feature_names"]
            for m in server.client.get("/models").json()
            if m["product_group"] == "wine"
        )
        r = server.client.post(
            "/score", json={"product_group": "wine", "features": [0] * len(names)}
        )
        assert r.status_code == 503
        assert r.json()["detail"].startswith("the champion of 'wine' cannot be used: model ")
        assert "the stored model was modified after it was registered" in r.json()["detail"]
        ok = server.client.post(
            "/score", json={"product_group": "any", "features": [0] * len(names)}
        )
        assert ok.status_code == 200, ok.text
        assert server.client.get("/customers/1/propensity").status_code == 200
        wine = next(
            m for m in server.client.get("/health").json()["models"] if m["product_group"] == "wine"
        )
        assert wine["status"].startswith("error: model ")
        second = server.client.get("/health").json()["snapshot"]
        assert second != first

        # 4. the snapshot CURRENT names disappears before the service opens it: the service
        # keeps the one it has open and says so in /health
        assert main(["--warehouse", str(own), "snapshot"]) == 0
        third = current_name(serving)
        (serving / third).unlink()
        r = server.client.get("/customers/1/propensity")
        assert r.status_code == 200
        health = wait_for_health(server, lambda h: h["snapshot_error"] is not None)
        assert health["status"] == "degraded" and health["snapshot"] == second
        assert (
            f"the current snapshot {third} (named by CURRENT) has disappeared"
            in (health["snapshot_error"])
        )
        assert health["snapshot_error"].endswith(f"; still serving {second}")

        # 5. the file in use is deleted too: the open snapshot stays readable
        (serving / second).unlink()
        assert server.client.get("/customers/2/propensity").status_code == 200

        # 6. publishes while clients read: every answer is whole (200, three groups)
        failures: list[str] = []
        stop = threading.Event()

        def read() -> None:
            with httpx.Client(
                base_url=server.url, headers={"X-API-Key": API_KEY}, timeout=10
            ) as client:
                n = 0
                while not stop.is_set() or n < 20:
                    n += 1
                    r = client.get(f"/customers/{1 + n % 2000}/propensity")
                    if r.status_code != 200 or len(r.json()["groups"]) != 3:
                        failures.append(f"{r.status_code} {r.text[:200]}")

        readers = [threading.Thread(target=read) for _ in range(3)]
        for t in readers:
            t.start()
        for _ in range(3):
            assert main(["--warehouse", str(own), "snapshot"]) == 0
        stop.set()
        for t in readers:
            t.join()
        assert failures == []
        health = wait_for_health(server, lambda h: h["snapshot"] == current_name(serving))
        assert health["status"] == "ok"
        snapshots = sorted(p.name for p in serving.glob("snapshot-*.duckdb"))
        assert len(snapshots) == 3  # --keep 3: older files removed
        assert not list(serving.glob(".publishing-*"))
        assert server.alive()
    finally:
        server.stop()


def test_the_snapshot_copies_with_every_core_whatever_dbt_threads_are(
    warehouse, tmp_path, monkeypatch
):
    """PROPENSITY_THREADS is dbt's threads (one model at a time at 10M customers); the copy into
    the snapshot keeps DuckDB's default threads, as dbt's models do (46 s against 17 s at 10M,
    docs/benchmarks.md)."""
    from models_py.serving import _snapshot

    default = duckdb.connect().execute("select current_setting('threads')").fetchone()[0]
    if default < 2:
        pytest.skip(f"DuckDB's default here is {default} thread: nothing to tell apart")
    own = tmp_path / "wh.duckdb"
    shutil.copy(warehouse, own)
    real_connect = duckdb.connect
    seen = []

    def connect(database=":memory:", *args, **kwargs):
        con = real_connect(database, *args, **kwargs)
        if ".publishing-" in str(database):
            seen.append(con.execute("select current_setting('threads')").fetchone()[0])
        return con

    monkeypatch.setattr(_snapshot.duckdb, "connect", connect)
    monkeypatch.setenv("PROPENSITY_THREADS", "1")
    assert main(["--warehouse", str(own), "snapshot"]) == 0
    assert seen == [default]


def test_snapshot_without_scores_is_a_named_error(tmp_path, capsys):
    from tests.conftest import write_tiny_warehouse

    write_tiny_warehouse(tmp_path / "tiny.duckdb")
    assert main(["--warehouse", str(tmp_path / "tiny.duckdb"), "snapshot"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert "has no marts.fct_propensity_scores: there are no scores to serve" in err
    assert not (tmp_path / "tiny.serving" / POINTER).exists()
    assert not list((tmp_path / "tiny.serving").glob("*.duckdb"))


# ---------------------------------------------------------- reasons as the daily run wrote them


def test_score_reasons_are_the_top_three_exact_shap_features(warehouse):
    """fct_score_reasons, built by the daily run: up to three positive contributions per
    (customer, group), labelled from the catalogue, equal to TreeSHAP recomputed here from the
    registered champion and the group's scoring features."""
    from models_py.explain import parse_tree_ensemble, top_reasons
    from models_py.explain._trees import tree_shap_values

    rows = query(
        warehouse,
        "select product_group, method, count(distinct customer_id), max(reason_rank), "
        "min(contribution), bool_and(feature_label like '%: %') from marts.fct_score_reasons "
        "group by 1, 2 order by 1",
    )
    assert [r[:2] for r in rows] == [(g, "tree_shap") for g in ("any", "sweets", "wine")]
    for _, _, customers, max_rank, min_contribution, labelled in rows:
        assert customers > 1500 and max_rank == 3 and min_contribution > 0 and labelled
    descending = query(
        warehouse,
        "select count(*) from (select contribution < lead(contribution) over (partition by "
        "customer_id, product_group order by reason_rank) as rises from marts.fct_score_reasons) "
        "where rises",
    )
    assert descending == [(0,)]

    model_id, onnx_bytes, names = query(
        warehouse,
        "select model_id, onnx_model, feature_names from ml.model_registry where model_id = "
        "(select model_id from ml.model_aliases where product_group = 'wine' and alias = "
        "'champion')",
    )[0]

    names = json.loads(names)
    columns = ", ".join(f'cast("{n}" as float)' for n in names)
    data = query(
        warehouse,
        f"select customer_id, {columns} from marts.fct_scoring_features "
        "where product_group = 'wine' order by customer_id",
    )
    ids = np.array([r[0] for r in data])
    X = np.array([r[1:] for r in data], dtype=np.float32)
    ens = parse_tree_ensemble(bytes(onnx_bytes), model_id=model_id, n_features=len(names))
    row, rank, feature, value = top_reasons(tree_shap_values(ens, X, X))
    expected = sorted(
        (int(ids[r]), int(k), names[f], round(float(v), 5))
        for r, k, f, v in zip(row, rank, feature, value, strict=True)
    )
    stored = query(
        warehouse,
        "select customer_id, reason_rank, feature_name, round(contribution, 5) "
        "from marts.fct_score_reasons where product_group = 'wine' order by all",
    )
    assert stored == expected


@pytest.mark.parametrize(
    ("dbt_vars", "message"),
    [
        (
            "{score_reasons_method: fastest}",
            "score_reasons_method 'fastest' is not one of auto, tree_shap, saabas",
        ),
        (
            "{score_reasons_max_decile: 11}",
            "score_reasons_max_decile '11' is not a whole number from 0 to 10",
        ),
    ],
)
def test_a_bad_reasons_setting_fails_the_build_with_its_name(warehouse, capsys, dbt_vars, message):
    before = query(warehouse, "select count(*) from marts.fct_score_reasons")
    code = main(
        [
            "--warehouse",
            str(warehouse),
            "build",
            "--select",
            "fct_score_reasons",
            "--vars",
            dbt_vars,
        ]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert message in err
    assert query(warehouse, "select count(*) from marts.fct_score_reasons") == before
