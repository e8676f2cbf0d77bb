"""The OpenAPI document is self-contained: every reference in it resolves."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import jsonschema
import pytest
from fastapi.testclient import TestClient
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable

from monitor.api import create_app
from monitor.settings import MonitorSettings
from tests.conftest import credit_event


def _refs(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield path, value
            else:
                yield from _refs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _refs(value, f"{path}/{i}")


@pytest.fixture
def spec(sqlite_url: str) -> dict[str, Any]:
    with TestClient(create_app(MonitorSettings(database_url=sqlite_url))) as client:
        return client.get("/openapi.json").json()


def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    # References are resolved against the document, as OpenAPI 3.1 defines them.
    resolver = Registry().with_resource("", Resource.opaque(spec)).resolver()
    found = list(_refs(spec))
    assert found, "the document holds references"
    broken = []
    for where, ref in found:
        try:
            resolver.lookup(ref)
        except Unresolvable:
            broken.append(f"{where}: {ref}")
    assert not broken, broken


@pytest.mark.parametrize("route", ["/v1/ingest/predictions", "/v1/ingest/labels"])
def test_ingest_body_schemas_validate_bodies(spec: dict[str, Any], route: str) -> None:
    schema = spec["paths"][route]["post"]["requestBody"]["content"]["application/json"]["schema"]
    # Checked as a schema of its own: it must not lean on definitions it does not hold.
    validator = jsonschema.Draft202012Validator(schema)
    if route.endswith("predictions"):
        # The schema documents ISO 8601 times (epoch seconds are accepted too).
        event = credit_event(1, timestamp="2023-11-14T22:13:20Z")
        good: dict[str, Any] = {"events": [event]}
        bad: dict[str, Any] = {"events": [event | {"outputs": {"nonsense": 1}}]}
    else:
        label = {"event_id": "l1", "model": "credit", "prediction_id": "ev-1", "value": 1}
        good = {"labels": [label | {"timestamp": "2023-11-14T22:13:20Z"}]}
        bad = {"labels": [label]}
    validator.validate(good)
    assert not validator.is_valid(bad)
