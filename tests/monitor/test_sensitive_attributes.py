"""A sensitive attribute must be a declared feature."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import text

from collectors.contract import ModelDescription
from monitor.store import Store
from tests.conftest import credit_model


def test_a_sensitive_attribute_that_is_no_feature_is_refused() -> None:
    body = credit_model().model_dump() | {"sensitive_attributes": ["age", "gender"]}
    with pytest.raises(ValidationError) as caught:
        ModelDescription.model_validate(body)
    message = str(caught.value)
    assert "sensitive_attributes must be declared features" in message
    assert "['gender']" in message
    ok = ModelDescription.model_validate(body | {"sensitive_attributes": ["age", "region"]})
    assert ok.sensitive_attributes == ["age", "region"]


def test_registration_answers_422_saying_why(api) -> None:
    body = credit_model().model_dump() | {"name": "other", "sensitive_attributes": ["gender"]}
    response = api.put("/v1/models/other", json=body)
    assert response.status_code == 422, response.text
    assert "sensitive_attributes must be declared features" in response.text
    assert api.get("/v1/models/other").status_code == 404


def test_a_model_stored_before_the_check_still_loads(sqlite_url: str) -> None:
    store = Store(sqlite_url)
    store.migrate()
    store.put_model(credit_model())
    with store.engine.begin() as conn:
        conn.execute(
            text("UPDATE models SET sensitive_attributes = :v WHERE name = 'credit'"),
            {"v": '["age", "gender"]'},
        )
    assert store.get_model("credit").sensitive_attributes == ["age"]
    store.close()
