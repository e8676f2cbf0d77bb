"""The ingest API: what it stores, and how it refuses what it must not store."""

from __future__ import annotations

import gzip
import math

import orjson
from fastapi.testclient import TestClient

from monitor.core.windows import Window
from tests.conftest import ADMIN, INGEST_CREDIT, credit_event

PREDICTIONS = "/v1/ingest/predictions"


def post(client: TestClient, events: list[dict], token: str | None = None):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = orjson.dumps({"schema_version": 1, "events": events})
    return client.post(PREDICTIONS, content=body, headers=headers)


def stored_count(client: TestClient) -> int:
    return client.app.state.store.count_predictions()


def problems(response) -> dict[str, str]:
    return {p["loc"]: p["msg"] for p in response.json()["problems"]}


def rejected(response) -> dict[int, tuple[str, dict[str, str]]]:
    """Each rejected event's index: its reason and problems."""
    assert response.status_code == 200, response.text
    return {
        r["index"]: (r["reason"], {p["loc"]: p["msg"] for p in r["problems"]})
        for r in response.json()["rejected"]
    }


def test_valid_batch_is_stored_with_its_fields(api: TestClient) -> None:
    events = [credit_event(i) for i in range(5)]
    events[0]["trace_id"] = "0af7651916cd43dd8448eb211c80319c"
    events[0]["segment"] = {"channel": "web"}
    response = post(api, events)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "received": 5,
        "stored": 5,
        "duplicates": 0,
        "rejected": [],
        "unmatched": 0,
    }
    rows = api.app.state.store.predictions_in_window(Window("credit", "v1", 0, 2e9))
    assert len(rows) == 5
    features = sorted((r[0]["income"], r[0]["age"]) for r in rows)
    assert features == [(1000.0 + i, 30 + i) for i in range(5)]
    assert {r[1]["predicted_class"] for r in rows} == {0, 1}
    assert all(r[2] == 0.01 for r in rows)


def test_replayed_batch_stores_nothing_twice(api: TestClient) -> None:
    events = [credit_event(i) for i in range(10)]
    assert post(api, events).json() == {
        "received": 10,
        "stored": 10,
        "duplicates": 0,
        "rejected": [],
        "unmatched": 0,
    }
    again = post(api, events[5:] + [credit_event(10)])
    assert again.json() == {
        "received": 6,
        "stored": 1,
        "duplicates": 5,
        "rejected": [],
        "unmatched": 0,
    }
    assert stored_count(api) == 11
    metrics = api.get("/metrics").text
    assert (
        'sidewatch_ingested_events_total{kind="predictions",model="credit",outcome="duplicate"} 5.0'
        in metrics
    )
    assert (
        'sidewatch_ingested_events_total{kind="predictions",model="credit",outcome="stored"} 11.0'
        in metrics
    )


def test_an_event_repeated_within_a_batch_is_stored_once(api: TestClient) -> None:
    events = [credit_event(0), credit_event(1), credit_event(0)]
    assert post(api, events).json() == {
        "received": 3,
        "stored": 2,
        "duplicates": 1,
        "rejected": [],
        "unmatched": 0,
    }
    metrics = api.get("/metrics").text
    expected = 'model="credit",outcome="duplicate"} 1.0'
    assert expected in metrics
    latency = 'sidewatch_prediction_latency_seconds_count{model="credit",model_version="v1"} 2.0'
    assert latency in metrics


def test_malformed_json_is_a_422_naming_the_body(api: TestClient) -> None:
    response = api.post(
        PREDICTIONS, content=b'{"events": [', headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 422
    assert "body" in problems(response)
    assert "JSON" in problems(response)["body"]
    assert stored_count(api) == 0


def test_an_invalid_event_costs_itself_alone(api: TestClient) -> None:
    event = credit_event(1)
    del event["model_version"]
    response = post(api, [credit_event(0), event, credit_event(2)])
    assert rejected(response) == {1: ("invalid", {"events[1].model_version": "Field required"})}
    assert response.json()["rejected"][0]["event_id"] == "ev-1"
    assert (response.json()["received"], response.json()["stored"]) == (3, 2)
    assert stored_count(api) == 2, "the valid events of the batch are stored"
    metrics = api.get("/metrics").text
    assert (
        'sidewatch_ingest_rejected_events_total{kind="predictions",reason="invalid"} 1.0' in metrics
    )


def test_variant_and_stage_are_stored_and_checked_alike(api: TestClient) -> None:
    events = [credit_event(i) for i in range(6)]
    events[0] |= {"variant": "shadow", "stage": "ranker"}
    events[1] |= {"stage": "retrieval"}
    events[2] |= {"stage": "x" * 65}
    events[3] |= {"stage": "-starts-badly"}
    events[4] |= {"variant": "x" * 65}
    found = rejected(post(api, events))
    assert sorted(found) == [2, 3, 4]
    assert list(found[2][1]) == ["events[2].stage"] and list(found[4][1]) == ["events[4].variant"]
    store = api.app.state.store
    window = Window("credit", "v1", 0, 2e9)
    assert store.split_counts(window, "stage") == {"ranker": 1, "retrieval": 1}
    assert store.split_counts(window, "variant") == {"shadow": 1}


def test_an_event_of_an_unregistered_model_is_rejected_alone(api: TestClient) -> None:
    response = post(api, [credit_event(0, model="nosuch"), credit_event(1)])
    assert rejected(response) == {
        0: (
            "unknown_model",
            {"model": "model 'nosuch' is not registered: PUT /v1/models/nosuch first"},
        )
    }
    assert stored_count(api) == 1


def test_a_nul_character_is_refused_by_the_contract_on_every_store(api: TestClient) -> None:
    # PostgreSQL's JSONB refuses U+0000 (a 500 that blocked the stream behind it), and
    # SQLite cut a segment value short at it: the contract refuses it, event by event.
    event = credit_event(0)
    event["features"]["region"] = "no\x00rth"
    segmented = credit_event(1, segment={"channel": "we\x00b"})
    labelled = credit_event(2, outputs={"predicted_class": "a\x00"})
    response = post(api, [event, segmented, labelled, credit_event(3)])
    reasons = rejected(response)
    assert {i: reason for i, (reason, _) in reasons.items()} == {
        0: "invalid",
        1: "invalid",
        2: "invalid",
    }
    assert "no U+0000" in reasons[0][1]["events[0].features.region"]
    assert "events[1].segment.channel" in reasons[1][1]
    assert stored_count(api) == 1


def test_wrong_feature_types_are_named_without_echoing_values(api: TestClient) -> None:
    event = credit_event(0)
    event["features"] = {"income": "SECRET-VALUE", "age": 31, "region": 2.5, "has_card": 1}
    response = post(api, [event])
    assert rejected(response)[0][1] == {
        "events[0].features.income": "expected a number or null (a numeric feature)",
        "events[0].features.region": (
            "expected a string, an integer or null (a categorical feature)"
        ),
        "events[0].features.has_card": "expected true, false or null (a boolean feature)",
    }
    assert "SECRET-VALUE" not in response.text


def test_missing_and_unknown_features_are_named(api: TestClient) -> None:
    event = credit_event(0)
    del event["features"]["age"]
    event["features"]["zip_code"] = "12345"
    response = post(api, [event])
    assert rejected(response)[0][1] == {
        "events[0].features.age": "missing: the model declares it",
        "events[0].features.zip_code": "unknown: the model does not declare it",
    }
    assert "12345" not in response.text


def test_null_features_are_accepted_as_missing_values(api: TestClient) -> None:
    event = credit_event(0)
    event["features"]["income"] = None
    assert post(api, [event]).status_code == 200


def test_nan_and_infinity_are_refused(api: TestClient) -> None:
    body = orjson.dumps({"events": [credit_event(0)]}).replace(b"1000.0", b"NaN")
    response = api.post(PREDICTIONS, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "events[0].features.income" in problems(response)
    body = orjson.dumps({"events": [credit_event(0, latency_seconds=1.0)]}).replace(
        b'"latency_seconds":1.0', b'"latency_seconds":Infinity'
    )
    response = api.post(PREDICTIONS, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert "events[0].latency_seconds" in problems(response)
    assert not math.isnan(stored_count(api)) and stored_count(api) == 0


def test_oversized_body_is_refused_before_reading(sqlite_url: str) -> None:
    from tests.conftest import credit_model, make_client

    with make_client(sqlite_url, max_request_bytes=64 * 1024) as client:
        client.put("/v1/models/credit", json=credit_model().model_dump())
        events = [credit_event(i) for i in range(1000)]  # about 250 KB
        response = post(client, events)
        assert response.status_code == 413
        assert problems(response) == {"body": "expected at most 65536 bytes"}

        def chunks():  # no Content-Length: counted as it streams
            body = orjson.dumps({"events": events})
            for i in range(0, len(body), 8192):
                yield body[i : i + 8192]

        response = client.post(
            PREDICTIONS, content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert stored_count(client) == 0
        assert (
            'sidewatch_ingest_rejected_requests_total{reason="too_large"} 2.0'
            in client.get("/metrics").text
        )


def test_too_many_events_in_one_batch(api: TestClient) -> None:
    events = [credit_event(i) for i in range(10_001)]
    response = post(api, events)
    assert response.status_code == 422
    assert "events" in problems(response)
    assert "10000" in problems(response)["events"]


def test_gzip_bodies_are_decoded(api: TestClient) -> None:
    body = gzip.compress(orjson.dumps({"events": [credit_event(i) for i in range(50)]}))
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    response = api.post(PREDICTIONS, content=body, headers=headers)
    assert response.json() == {
        "received": 50,
        "stored": 50,
        "duplicates": 0,
        "rejected": [],
        "unmatched": 0,
    }
    response = api.post(PREDICTIONS, content=body[:-10], headers=headers)
    assert response.status_code == 422 and "gzip" in response.json()["detail"]
    response = api.post(PREDICTIONS, content=b"not gzip", headers=headers)
    assert response.status_code == 422
    headers["Content-Encoding"] = "br"
    response = api.post(PREDICTIONS, content=body, headers=headers)
    assert response.status_code == 422 and "Content-Encoding" in response.text


def test_a_gzip_bomb_is_refused_before_it_fills_memory(sqlite_url: str) -> None:
    from tests.conftest import credit_model, make_client

    with make_client(sqlite_url, max_request_bytes=1024 * 1024) as client:
        client.put("/v1/models/credit", json=credit_model().model_dump())
        bomb = gzip.compress(b"[" * (200 * 1024 * 1024))  # 200 MB of brackets in ~200 KB
        assert len(bomb) < 1024 * 1024
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        response = client.post(PREDICTIONS, content=bomb, headers=headers)
        assert response.status_code == 413
        assert "decompressed" in response.json()["detail"]


def test_no_token_is_401_once_tokens_are_configured(secured_api: TestClient) -> None:
    response = post(secured_api, [credit_event(0)])
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert post(secured_api, [credit_event(0)], token="wrong-token-0123456789").status_code == 401
    assert secured_api.get("/v1/models").status_code == 401
    assert stored_count(secured_api) == 0


def test_ingest_token_writes_only_its_models(secured_api: TestClient) -> None:
    assert post(secured_api, [credit_event(0)], token=INGEST_CREDIT).status_code == 200
    response = post(secured_api, [credit_event(1, model="other")], token=INGEST_CREDIT)
    assert rejected(response) == {
        0: ("forbidden", {"model": "this token may not write model 'other'"})
    }
    assert post(secured_api, [credit_event(2, model="other")], token=ADMIN).status_code == 200
    assert stored_count(secured_api) == 2


def test_ingest_token_cannot_administer(secured_api: TestClient) -> None:
    headers = {"Authorization": f"Bearer {INGEST_CREDIT}"}
    assert secured_api.get("/v1/models", headers=headers).status_code == 403
    assert secured_api.put("/v1/models/credit/versions/v9", headers=headers).status_code == 403


def test_labels_are_stored_once_and_need_a_join_key(api: TestClient) -> None:
    post(api, [credit_event(0, correlation_key="order-7"), credit_event(1)])
    labels = [
        {
            "event_id": "lab-0",
            "model": "credit",
            "prediction_id": "ev-1",
            "value": 1,
            "timestamp": 1_700_000_100,
        },
        {
            "event_id": "lab-1",
            "model": "credit",
            "correlation_key": "order-7",
            "value": 0,
            "timestamp": 1_700_000_100,
        },
    ]
    body = orjson.dumps({"labels": labels})
    headers = {"Content-Type": "application/json"}
    assert api.post("/v1/ingest/labels", content=body, headers=headers).json() == {
        "received": 2,
        "stored": 2,
        "duplicates": 0,
        "rejected": [],
        "unmatched": 0,
    }
    assert api.post("/v1/ingest/labels", content=body, headers=headers).json()["duplicates"] == 2
    joined = api.app.state.store.labelled_in_window(Window("credit", "v1", 0, 2e9))
    assert sorted((o["predicted_class"], v) for o, v in joined) == [(0, 0), (1, 1)]
    bad = orjson.dumps(
        {"labels": [{"event_id": "lab-9", "model": "credit", "value": 1, "timestamp": 1}]}
    )
    response = api.post("/v1/ingest/labels", content=bad, headers=headers)
    assert rejected(response)[0][0] == "invalid"
    assert "prediction_id and correlation_key" in response.text


def test_a_label_for_an_unknown_prediction_is_stored_and_said_unmatched(api: TestClient) -> None:
    headers = {"Content-Type": "application/json"}
    label = {"event_id": "lab-0", "model": "credit", "prediction_id": "ev-0", "value": 1,
             "timestamp": 1_700_000_100}  # fmt: skip
    body = orjson.dumps({"labels": [label]})
    response = api.post("/v1/ingest/labels", content=body, headers=headers)
    assert (response.json()["stored"], response.json()["unmatched"]) == (1, 1)
    metrics = api.get("/metrics").text
    assert (
        'sidewatch_ingested_events_total{kind="labels",model="credit",outcome="unmatched"} 1.0'
        in metrics
    )
    post(api, [credit_event(0)])  # the prediction arrives later: the label joins it
    joined = api.app.state.store.labelled_in_window(Window("credit", "v1", 0, 2e9))
    assert [v for _, v in joined] == [1]


def test_openapi_documents_the_ingest_body(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    body = spec["paths"]["/v1/ingest/predictions"]["post"]["requestBody"]
    assert "events" in body["content"]["application/json"]["schema"]["properties"]
    assert api.get("/docs").status_code == 200


def test_health(api: TestClient) -> None:
    assert api.get("/livez").json() == {"status": "ok"}
    assert api.get("/readyz").json() == {"status": "ok"}
