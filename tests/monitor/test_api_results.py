"""Reading results by model, version, window and feature; the dataset-level metrics."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from monitor.api import create_app
from monitor.settings import MonitorSettings
from tests.conftest import credit_model
from tests.monitor.test_scoring import T0, Clock, W, post_events, reference_frame, samples


def test_drift_results_by_feature_and_window(sqlite_url) -> None:
    clock = Clock(T0)
    settings = MonitorSettings(database_url=sqlite_url, window_seconds=W, drift_share=0.25)
    with TestClient(create_app(settings, clock=clock)) as client:
        client.put("/v1/models/credit", json=credit_model().model_dump())
        rng = np.random.default_rng(4)
        reference = reference_frame(rng, 3000)
        upload = client.put(
            "/v1/models/credit/versions/v1/reference",
            content=reference.to_csv(index=False).encode(),
            headers={"Content-Type": "text/csv"},
        )
        assert upload.status_code == 201, upload.text
        quiet, drifted = reference_frame(rng, 400), reference_frame(rng, 400)
        drifted["income"] = drifted["income"] * 2
        post_events(client, quiet, T0, np.zeros(400))
        post_events(client, drifted, T0 + W, np.zeros(400))
        clock.now = T0 + 2 * W
        loop = client.app.state.loop
        loop.mark("credit", "v1", [T0, T0 + W])
        loop.run_once()

        rows = client.get("/v1/models/credit/versions/v1/drift", params={"feature": "income"})
        assert rows.status_code == 200, rows.text
        income = rows.json()
        assert [r["window_start"] for r in income] == [T0 + W, T0], "newest first"
        assert [r["test"] for r in income] == ["wasserstein", "wasserstein"]
        assert [r["drifted"] for r in income] == [True, False]
        assert all(r["error_bound"] >= 0 and r["statistic"] == r["value"] for r in income)
        assert {r["feature"] for r in client.get("/v1/models/credit/versions/v1/drift").json()} == {
            "income",
            "age",
            "region",
            "has_card",
        }
        only_first = client.get(
            "/v1/models/credit/versions/v1/drift", params={"until": T0, "feature": "region"}
        ).json()
        assert [(r["window_start"], r["test"]) for r in only_first] == [(T0, "jensenshannon")]

        window = client.get(f"/v1/models/credit/versions/v1/windows/{T0 + W}").json()
        assert window["predictions"] == 400 and window["definition"].startswith("window-v1")
        assert window["drift_share"] == 0.25 and window["dataset_drifted"] is True
        assert client.get(f"/v1/models/credit/versions/v1/windows/{T0 + 7}").status_code == 404
        assert client.get("/v1/models/nosuch/versions/v1/drift").status_code == 404

        mv = (("model", "credit"), ("model_version", "v1"))
        assert samples(client, "sidewatch_window_drifted_features_ratio") == {mv: 0.25}
        assert samples(client, "sidewatch_window_dataset_drifted") == {mv: 1.0}
        tests = {
            dict(k)["feature"]: dict(k)["test"]
            for k in samples(client, "sidewatch_feature_drifted")
        }
        assert tests == {
            "income": "wasserstein",
            "age": "wasserstein",
            "region": "jensenshannon",
            "has_card": "jensenshannon",
        }


def test_reads_need_the_admin_token(secured_api) -> None:
    from tests.conftest import ADMIN, INGEST_CREDIT

    path = "/v1/models/credit/versions/v1/drift"
    assert secured_api.get(path).status_code == 401
    assert (
        secured_api.get(path, headers={"Authorization": f"Bearer {INGEST_CREDIT}"}).status_code
        == 403
    )
    assert secured_api.get(path, headers={"Authorization": f"Bearer {ADMIN}"}).json() == []
