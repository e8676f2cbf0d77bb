"""Who may do what: every route of the monitor against every kind of caller.

The routes are enumerated from the application itself, so a new route fails the
matrix until its row says who may call it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from monitor.core.windows import Window
from tests.conftest import ADMIN, INGEST_CREDIT, credit_event, credit_model, make_client
from tests.monitor.test_scoring import reference_frame
from tests.monitor.test_tenants import INGEST_OTHER

SCRAPE = "scrape-token-0123456789"

CALLERS: dict[str, str | None] = {
    "none": None,
    "wrong": "wrong-token-0123456789",
    "ingest_a": INGEST_CREDIT,
    "scrape": SCRAPE,
    "admin": ADMIN,
}
"""The kinds of caller; ``ingest_a`` may write the model ``credit`` (model A) only."""

EVERYONE = frozenset(CALLERS)
ADMIN_ONLY = frozenset({"admin"})
SCRAPERS = frozenset({"scrape", "admin"})
WRITERS_OF_A = frozenset({"ingest_a", "admin"})

B_EVENT = "b-event"
"""A prediction of model ``other`` (model B), labelled 1 by B's own token."""


@dataclass(frozen=True)
class Call:
    """One request, the callers allowed to make it, and the status they get."""

    path: str
    allowed: frozenset[str]
    ok: int = 200
    body: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    per_event: bool = False
    """Ingest: an ingest token for another model is answered event by event (200, each
    event rejected as ``forbidden``, nothing stored), not refused whole."""


def predictions(model: str) -> bytes:
    return orjson.dumps({"events": [credit_event(0, event_id=f"{model}-e", model=model)]})


def labels(model: str, prediction_id: str) -> bytes:
    label = {
        "event_id": f"{model}-label-for-{prediction_id}",
        "model": model,
        "prediction_id": prediction_id,
        "value": 0,
        "timestamp": 1_700_000_100,
    }
    return orjson.dumps({"labels": [label]})


REFERENCE = reference_frame(np.random.default_rng(0), 50).to_csv(index=False).encode()
V = "/v1/models/credit/versions/v1"

MATRIX: dict[tuple[str, str], list[Call]] = {
    ("GET", "/livez"): [Call("/livez", EVERYONE)],
    ("GET", "/readyz"): [Call("/readyz", EVERYONE)],
    ("GET", "/metrics"): [Call("/metrics", SCRAPERS)],
    ("GET", "/openapi.json"): [Call("/openapi.json", ADMIN_ONLY)],
    ("GET", "/docs"): [Call("/docs", ADMIN_ONLY)],
    ("GET", "/redoc"): [Call("/redoc", ADMIN_ONLY)],
    ("GET", "/v1/models"): [Call("/v1/models", ADMIN_ONLY)],
    ("GET", "/v1/models/{name}"): [Call("/v1/models/credit", ADMIN_ONLY)],
    ("GET", "/v1/models/{name}/groups"): [Call("/v1/models/credit/groups", ADMIN_ONLY)],
    ("PUT", "/v1/models/{name}"): [
        Call("/v1/models/credit", ADMIN_ONLY, body=credit_model().model_dump())
    ],
    ("PUT", "/v1/models/{name}/versions/{version}"): [Call(V, ADMIN_ONLY)],
    ("PUT", "/v1/models/{name}/versions/{version}/reference"): [
        Call(
            f"{V}/reference",
            ADMIN_ONLY,
            201,
            content=REFERENCE,
            headers={"Content-Type": "text/csv"},
        )
    ],
    ("POST", "/v1/ingest/predictions"): [
        Call("/v1/ingest/predictions", WRITERS_OF_A, content=predictions("credit")),
        Call("/v1/ingest/predictions", ADMIN_ONLY, content=predictions("other"), per_event=True),
    ],
    ("POST", "/v1/ingest/labels"): [
        # A's label of A's model is A's to write, even naming B's event id (it joins
        # nothing of B's: checked below); a label of B's model is not.
        Call("/v1/ingest/labels", WRITERS_OF_A, content=labels("credit", B_EVENT)),
        Call("/v1/ingest/labels", WRITERS_OF_A, content=labels("credit", "credit-e")),
        Call("/v1/ingest/labels", ADMIN_ONLY, content=labels("other", "other-e"), per_event=True),
    ],
    ("GET", "/v1/models/{name}/versions/{version}/windows"): [Call(f"{V}/windows", ADMIN_ONLY)],
    ("GET", "/v1/models/{name}/versions/{version}/windows/{window_start}"): [
        Call(f"{V}/windows/1700000000", ADMIN_ONLY, 404)
    ],
    ("GET", "/v1/models/{name}/versions/{version}/drift"): [Call(f"{V}/drift", ADMIN_ONLY)],
    ("GET", "/v1/models/{name}/versions/{version}/predictions/{event_id}/results"): [
        # Past authorisation no part kept a result about the event: a 404 that says so.
        Call(f"{V}/predictions/credit-e/results", ADMIN_ONLY, 404)
    ],
    ("GET", "/v1/models/{name}/versions/{version}/results/{part}"): [
        Call(f"{V}/results/anomaly", ADMIN_ONLY)
    ],
    ("GET", "/v1/models/{name}/versions/{version}/report"): [
        # Past authorisation the version has no reference: a 404 that says so.
        Call("/v1/models/other/versions/v9/report", ADMIN_ONLY, 404)
    ],
}


def routes(client: TestClient) -> set[tuple[str, str]]:
    """``(method, path)`` of every route, those of included routers too."""
    found: set[tuple[str, str]] = set()

    def walk(members: list[Any], prefix: str) -> None:
        for route in members:
            router = getattr(route, "original_router", None)  # FastAPI 0.16x: an include
            if router is not None:
                walk(router.routes, prefix + route.include_context.prefix)
                continue
            path = prefix + getattr(route, "path", "?")
            assert isinstance(route, APIRoute), f"{path}: not an API route, not checked here"
            found.update((m, path) for m in route.methods if m != "HEAD")

    walk(client.app.routes, "")  # type: ignore[attr-defined]
    return found


@pytest.fixture
def secured(sqlite_url: str) -> Iterator[TestClient]:
    with make_client(
        sqlite_url,
        admin_token=ADMIN,
        ingest_tokens={INGEST_CREDIT: ["credit"], INGEST_OTHER: ["other"]},
        scrape_token=SCRAPE,
    ) as client:
        admin = {"Authorization": f"Bearer {ADMIN}"}
        for name in ("credit", "other"):
            response = client.put(
                f"/v1/models/{name}", json=credit_model(name).model_dump(), headers=admin
            )
            assert response.status_code == 201, response.text
        b = {"Authorization": f"Bearer {INGEST_OTHER}"}
        event = credit_event(0, event_id=B_EVENT, model="other", outputs={"predicted_class": 1})
        assert client.post("/v1/ingest/predictions", json={"events": [event]}, headers=b).is_success
        # Older than A's labels: were they to join B's prediction, theirs would count.
        label = {**orjson.loads(labels("other", B_EVENT))["labels"][0], "value": 1}
        label.update(event_id="b-label", timestamp=1_700_000_050)
        assert client.post("/v1/ingest/labels", json={"labels": [label]}, headers=b).is_success
        yield client


def test_every_route_is_in_the_matrix(secured: TestClient) -> None:
    assert routes(secured) == set(MATRIX), "a route without a row in MATRIX, or a stale row"


def test_who_may_do_what(secured: TestClient) -> None:
    outcomes: dict[tuple[str, str, int, str], int] = {}
    wrong: list[str] = []
    for (method, route), calls in MATRIX.items():
        for (i, call), (caller, token) in itertools.product(enumerate(calls), CALLERS.items()):
            headers = dict(call.headers)
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            response = secured.request(
                method, call.path, json=call.body, content=call.content, headers=headers
            )
            status = response.status_code
            outcomes[(method, route, i, caller)] = status
            if caller in call.allowed:
                expected = call.ok
            elif caller in ("none", "wrong"):
                expected = 401
            elif call.per_event and caller == "ingest_a":
                expected = 200
                answer = response.json() if status == 200 else {}
                if [r["reason"] for r in answer.get("rejected", ())] != ["forbidden"]:
                    wrong.append(f"{method} {call.path} as {caller}: not rejected as forbidden")
            else:
                expected = 403
            if status != expected:
                wrong.append(f"{method} {call.path} as {caller}: {status}, expected {expected}")
            if status == 401:
                assert response.headers["WWW-Authenticate"] == "Bearer"
    assert wrong == [], "\n".join(wrong)

    # A's labels joined A's prediction only; B's prediction keeps B's own label.
    store = secured.app.state.store  # type: ignore[attr-defined]
    joined = store.labelled_in_window(Window("other", "v1", 0, 2e9))
    assert sorted((o["predicted_class"], v) for o, v in joined) == [(0, 0), (1, 1)]
    joined = store.labelled_in_window(Window("credit", "v1", 0, 2e9))
    assert [(o["predicted_class"], v) for o, v in joined] == [(0, 0)]


def test_the_scrape_token_reads_every_metric_an_ingest_token_none(secured: TestClient) -> None:
    text = secured.get("/metrics", headers={"Authorization": f"Bearer {SCRAPE}"}).text
    assert (
        'sidewatch_ingested_events_total{kind="predictions",model="other",outcome="stored"}' in text
    )
    refused = secured.get("/metrics", headers={"Authorization": f"Bearer {INGEST_CREDIT}"})
    assert refused.status_code == 403 and "SIDEWATCH_SCRAPE_TOKEN" in refused.text


def test_docs_can_be_kept_public_and_without_tokens_all_is_open(sqlite_url: str) -> None:
    with make_client(sqlite_url, admin_token=ADMIN, public_docs=True) as client:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert client.get(path).status_code == 200, path
        assert client.get("/metrics").status_code == 401
        assert client.get("/v1/models").status_code == 401
    # No token configured (loopback only): nothing asks for one.
    with make_client(sqlite_url) as client:
        for path in ("/docs", "/redoc", "/openapi.json", "/metrics", "/v1/models"):
            assert client.get(path).status_code == 200, path
