"""Whatever arrives, the API answers 2xx or 4xx: never a 5xx, never a hang."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.core.windows import Window
from tests.conftest import credit_event, credit_model, make_client

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=20,
)

ODD_BODIES = [
    b"",
    b"null",
    b"[]",
    b"{}",
    b'{"events": {}}',
    b'{"labels": {}, "events": {}}',
    b'{"schema_version": 2, "events": [], "labels": []}',
    b"\xff\xfe\x00garbage",
    b"[" * 10_000 + b"]" * 10_000,
]
ODD_ITEMS = [b"null", b"[]", b'"text"', b"{}", b'{"a":' * 500 + b"1" + b"}" * 500]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory):
    url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'sidewatch.db'}"
    with make_client(url) as c:
        c.put("/v1/models/credit", json=credit_model().model_dump())
        yield c


@pytest.mark.parametrize("path", ["/v1/ingest/predictions", "/v1/ingest/labels"])
@pytest.mark.parametrize("body", ODD_BODIES)
def test_odd_bodies_get_a_4xx(client: TestClient, path: str, body: bytes) -> None:
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["detail"]


@pytest.mark.parametrize("key", ["events", "labels"])
@pytest.mark.parametrize("item", ODD_ITEMS)
def test_odd_items_are_rejected_each_beside_a_valid_one(
    client: TestClient, key: str, item: bytes
) -> None:
    path = f"/v1/ingest/{'predictions' if key == 'events' else 'labels'}"
    valid = credit_event(0, event_id="beside-odd") if key == "events" else {
        "event_id": "label-beside-odd", "model": "credit", "prediction_id": "beside-odd",
        "value": 1, "timestamp": 1_700_000_000}  # fmt: skip
    body = b'{"%s": [%s, %s]}' % (key.encode(), item, json.dumps(valid).encode())
    response = client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["received"] == 2
    assert [(r["index"], r["reason"]) for r in answer["rejected"]] == [(0, "invalid")]
    assert answer["stored"] + answer["duplicates"] == 1


def test_extreme_values_are_stored_or_refused_by_name(client: TestClient) -> None:
    event = credit_event(0, event_id="extreme")
    event["features"] |= {"income": 2**63 - 1, "age": -1e308, "region": "ü" * 1024}
    response = client.post("/v1/ingest/predictions", content=json.dumps({"events": [event]}))
    assert response.status_code == 200, response.text
    # Beyond 64 bits an integer is kept as a float; as a class it is refused.
    event |= {"event_id": "huge", "timestamp": 1_600_000_000}
    event["features"]["income"] = 2**70
    response = client.post("/v1/ingest/predictions", content=json.dumps({"events": [event]}))
    assert response.status_code == 200, response.text
    rows = client.app.state.store.predictions_in_window(
        Window("credit", "v1", 1_600_000_000, 1_600_000_001)
    )
    assert rows[0][0]["income"] == float(2**70)
    event |= {"event_id": "huge-class", "outputs": {"predicted_class": 2**70}}
    response = client.post("/v1/ingest/predictions", content=json.dumps({"events": [event]}))
    assert response.status_code == 200
    assert [r["reason"] for r in response.json()["rejected"]] == ["invalid"]
    assert "events[0].outputs.predicted_class" in response.text


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(document=JSON)
def test_any_json_document_gets_a_4xx(client: TestClient, document: object) -> None:
    body = json.dumps(document)
    for path in ("/v1/ingest/predictions", "/v1/ingest/labels", "/v1/models/credit"):
        method = client.put if path.startswith("/v1/models") else client.post
        response = method(path, content=body, headers={"Content-Type": "application/json"})
        assert response.status_code < 500, (path, response.text)


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(field=st.sampled_from(["event_id", "model", "model_version", "timestamp", "features",
                              "outputs", "latency_seconds", "trace_id", "segment", "variant"]),
       value=JSON)  # fmt: skip
def test_any_value_in_any_event_field_gets_an_answer_under_500(
    client: TestClient, field: str, value: object
) -> None:
    event = credit_event(0, event_id="fuzzed")
    event[field] = value
    body = json.dumps({"events": [event]})
    response = client.post("/v1/ingest/predictions", content=body)
    assert response.status_code in (200, 422), response.text


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/csv", b""),
        ("text/csv", b"income,age,region,has_card\n"),
        ("text/csv", b"\xff\xfe\x00\x01"),
        ("text/csv", b'"unterminated\n1,2'),
        ("application/json", b'{"income": 1}'),
        ("application/json", b"[1, 2, 3]"),
        ("application/json", b"nonsense"),
        ("application/vnd.apache.parquet", b"PAR1garbagePAR1"),
    ],
)
def test_bad_reference_files_get_a_422(client: TestClient, content_type: str, body: bytes) -> None:
    response = client.put(
        "/v1/models/credit/versions/v1/reference",
        content=body,
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 422, response.text


def test_bad_path_names_get_a_422(client: TestClient) -> None:
    assert client.put("/v1/models/credit/versions/..%2F..%2Fetc").status_code in (404, 422)
    assert client.put("/v1/models/credit/versions/" + "v" * 65).status_code == 422
    assert client.get("/v1/models/" + "x" * 200).status_code == 422
