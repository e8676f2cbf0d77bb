"""Per-prediction results: one table for what parts keep about single predictions,
read by event id and by window, with retention; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import inspect
from sqlmodel import SQLModel

import monitor.store._prediction_results as prediction_results_module
from monitor.api import create_app
from monitor.core.prediction_results import PredictionResultRecord
from monitor.core.windows import Split, Window
from monitor.runner import Budget
from monitor.score.retention import PredictionResultsRetention
from monitor.settings import MonitorSettings
from monitor.store import Store
from tests.monitor.test_migrations import insert_old_prediction, migrate_to
from tests.monitor.test_store import prediction_row


def result(
    i: int, part: str = "anomaly", *, ts: float | None = None, **changes: Any
) -> PredictionResultRecord:
    fields: dict[str, Any] = {
        "model": "credit",
        "model_version": "v1",
        "event_id": f"ev-{i}",
        "part": part,
        "ts": 1000.0 + i if ts is None else ts,
        "payload": {"flag": i % 3 == 0, "reasons": [f"r{i}"], "score": i / 7},
    }
    fields.update(changes)
    return PredictionResultRecord(**fields)


def keys(records: list[PredictionResultRecord]) -> list[tuple[str, str, float]]:
    return [(r.event_id, r.part, r.ts) for r in records]


def test_a_batch_is_read_back_by_event_id_every_part(store: Store) -> None:
    written = [
        result(1, "explanation", payload={"attribution": {"income": 0.25, "age": -0.125}}),
        result(1),
        result(2),
        result(1, model="other", payload={"flag": True}),
    ]
    assert store.save_prediction_results(written) == 4
    found = store.prediction_results("credit", "ev-1")
    assert [(r.part, dict(r.payload)) for r in found] == [
        ("anomaly", {"flag": False, "reasons": ["r1"], "score": 1 / 7}),
        ("explanation", {"attribution": {"income": 0.25, "age": -0.125}}),
    ]
    assert all(r.created_at is not None and r.model == "credit" for r in found)
    assert store.prediction_results("credit", "ev-1", "v1") == found
    assert store.prediction_results("credit", "ev-1", "v2") == []
    [other] = store.prediction_results("other", "ev-1")
    assert other.payload == {"flag": True}
    assert store.prediction_results("credit", "ev-9") == []


def test_the_same_key_again_replaces_the_result(store: Store) -> None:
    assert store.save_prediction_results([result(1), result(2)]) == 2
    assert store.save_prediction_results([result(1), result(2)]) == 2  # a retried batch
    again = [result(1, payload={"flag": True}), result(1, payload={"flag": False, "n": 2})]
    assert store.save_prediction_results(again) == 1  # within a batch, the last one wins
    [found] = store.prediction_results("credit", "ev-1")
    assert found.payload == {"flag": False, "n": 2}
    window = Window("credit", "v1", 0, 5000)
    assert len(store.prediction_results_in_window(window, "anomaly")) == 2
    assert store.save_prediction_results([]) == 0


def test_a_window_reads_one_parts_results_oldest_first_in_pages(store: Store) -> None:
    records = [result(i) for i in range(20)]
    # Three events at one time: a page boundary between them skips and repeats nothing.
    records += [result(i, ts=1007.0) for i in (30, 31, 32)]
    records += [result(i, "explanation") for i in range(20)]
    records += [result(i, model_version="v2") for i in range(40, 45)]
    store.save_prediction_results(records)
    window = Window("credit", "v1", 1005.0, 1015.0)
    everything = store.prediction_results_in_window(window, "anomaly")
    expected = sorted(
        (r.ts, r.event_id)
        for r in records
        if r.part == "anomaly" and r.model_version == "v1" and 1005 <= r.ts < 1015
    )
    assert [(r.ts, r.event_id) for r in everything] == expected and len(expected) == 13
    pages: list[PredictionResultRecord] = []
    after = None
    while True:
        page = store.prediction_results_in_window(window, "anomaly", limit=4, after=after)
        pages += page
        if len(page) < 4:
            break
        after = (page[-1].ts, page[-1].event_id)
    assert pages == everything
    assert store.prediction_results_in_window(window, "no-such-part") == []


def test_segment_and_count_windows_select_the_predictions_scoring_selects(store: Store) -> None:
    rows = [
        prediction_row(i, received_at=2000.0 + i, segment={"region": "eu" if i % 2 else "us"})
        for i in range(12)
    ]
    store.insert_predictions(rows)
    store.place_predictions("credit", "v1", None)
    store.save_prediction_results([result(i) for i in range(12)])
    eu = Window.of_time("credit", "v1", 1000.0, 60, Split("segment", "region", "eu"))
    assert [r.event_id for r in store.prediction_results_in_window(eu, "anomaly")] == [
        f"ev-{i}" for i in (1, 3, 5, 7, 9, 11)
    ]
    # Places follow (received_at, event_id): block 1 of 5 is ev-5 to ev-9.
    block = Window.of_count("credit", "v1", 1, 5, 1005.0, 1009.0)
    assert [r.event_id for r in store.prediction_results_in_window(block, "anomaly")] == [
        f"ev-{i}" for i in range(5, 10)
    ]


def test_retention_deletes_results_older_than_the_horizon_and_counts_them(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prediction_results_module, "DELETE_CHUNK", 3)  # several chunks
    store.save_prediction_results([result(i) for i in range(10)])
    store.save_prediction_results([result(i, "explanation") for i in range(10)])
    assert store.delete_prediction_results_before(1004.0) == 8
    left = store.prediction_results_in_window(Window("credit", "v1", 0, 5000), "anomaly")
    assert [r.ts for r in left] == [1004.0 + i for i in range(6)]
    assert store.expire_prediction_results(5.0, now=1010.0) == 2  # 1004 of both parts
    assert store.expire_prediction_results(5.0, now=1010.0) == 0
    assert len(store.prediction_results("credit", "ev-9")) == 2


def test_retention_is_a_setting_of_thirty_days_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    assert MonitorSettings().prediction_results_retention_seconds == 30 * 86400
    monkeypatch.setenv("SIDEWATCH_PREDICTION_RESULTS_RETENTION_SECONDS", "3600")
    assert MonitorSettings().prediction_results_retention_seconds == 3600


def test_0007_adds_the_table_with_its_indexes_and_downgrades(database_url: str) -> None:
    store = Store(database_url)
    try:
        migrate_to(store, "0006")
        insert_old_prediction(store, prediction_row(0))
        store.migrate()
        with store.engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), SQLModel.metadata) == []
            found = inspect(conn)
            pk = found.get_pk_constraint("prediction_results")["constrained_columns"]
            assert pk == ["event_id", "model", "part"]
            indexes = {
                i["name"]: i["column_names"] for i in found.get_indexes("prediction_results")
            }
        assert indexes == {
            "ix_prediction_results_window": ["model", "model_version", "part", "ts", "event_id"],
            "ix_prediction_results_ts": ["ts"],
        }
        store.save_prediction_results([result(0)])
        migrate_to(store, "0006", down=True)
        with store.engine.connect() as conn:
            assert "prediction_results" not in inspect(conn).get_table_names()
        assert store.count_predictions() == 1
        store.migrate()
        assert store.prediction_results("credit", "ev-0") == []
    finally:
        store.close()


def test_the_api_reads_results_by_event_id_and_by_window(api: TestClient) -> None:
    store: Store = api.app.state.store  # type: ignore[attr-defined]
    store.save_prediction_results(
        [result(i) for i in range(7)] + [result(3, "explanation", payload={"top": "income"})]
    )
    v = "/v1/models/credit/versions/v1"
    response = api.get(f"{v}/predictions/ev-3/results")
    assert response.status_code == 200, response.text
    assert [(r["part"], r["payload"]) for r in response.json()] == [
        ("anomaly", {"flag": True, "reasons": ["r3"], "score": 3 / 7}),
        ("explanation", {"top": "income"}),
    ]
    missing = api.get(f"{v}/predictions/ev-99/results")
    assert missing.status_code == 404 and "ev-99" in missing.text
    assert api.get("/v1/models/nope/versions/v1/predictions/ev-3/results").status_code == 404

    url: str | None = f"{v}/results/anomaly?since=1001&until=1006&limit=2"
    seen = []
    while url is not None:
        page = api.get(url)
        assert page.status_code == 200, page.text
        seen += [(r["event_id"], r["ts"]) for r in page.json()]
        link = page.headers.get("Link")
        url = None if link is None else link.split(">")[0].removeprefix("<")
    assert seen == [(f"ev-{i}", 1000.0 + i) for i in range(1, 6)]
    assert api.get(f"{v}/results/anomaly?since=5&until=1").status_code == 422
    assert api.get(f"{v}/results/anomaly?after_ts=1002").status_code == 422
    assert api.get(f"{v}/results/anomaly?segment=nokey").status_code == 422
    paths = api.get("/openapi.json").json()["paths"]
    assert "/v1/models/{name}/versions/{version}/results/{part}" in paths
    assert "/v1/models/{name}/versions/{version}/predictions/{event_id}/results" in paths


def test_retention_runs_as_a_budgeted_background_job(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prediction_results_module, "DELETE_CHUNK", 2)
    store.save_prediction_results([result(i, ts=1000.0 + i) for i in range(7)])
    store.save_prediction_results([result(i, ts=5000.0 + i) for i in range(7, 9)])
    job = PredictionResultsRetention(store, retention_seconds=1000.0, clock=lambda: 5500.0)
    ticks = iter(range(100))

    def clock() -> float:  # each look at the budget takes a second: two chunks fit in 2.5
        return float(next(ticks))

    progress = job.run(Budget(2.5, clock))
    assert (progress.backlog, progress.yielded, job.deleted) == (3, True, 4)
    progress = job.run(Budget.unlimited())
    assert (progress.backlog, progress.yielded, job.deleted) == (0, False, 7)
    assert sorted(r.event_id for r in store.prediction_results_in_window(
        Window("credit", "v1", 0, 1e9), "anomaly", limit=100)) == ["ev-7", "ev-8"]  # fmt: skip


def test_the_app_runs_retention_on_its_runner(sqlite_url: str) -> None:
    with TestClient(create_app(MonitorSettings(database_url=sqlite_url))) as client:
        runner = client.app.state.runner  # type: ignore[attr-defined]
        assert "prediction_results_retention" in runner.names()
        assert runner.run_once("prediction_results_retention") == "done"
        metrics = client.get("/metrics").text
        assert 'sidewatch_background_backlog{job="prediction_results_retention"} 0.0' in metrics
