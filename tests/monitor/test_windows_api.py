"""GET .../windows: a time range, and every window reachable page by page."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient

from monitor.api import create_app
from monitor.score.results import WindowResult
from monitor.settings import MonitorSettings
from tests.conftest import credit_model

W = 60
URL = "/v1/models/credit/versions/v1/windows"


def _result(start: float) -> WindowResult:
    return WindowResult(
        "credit", "v1", start, start + W, "d1", 5, 0, None, None, None, None, None, (), 1.0
    )


@contextmanager
def _client(sqlite_url: str, windows: int) -> Iterator[TestClient]:
    """A monitor holding ``windows`` scored windows, starting at 0, W, 2W..."""
    with TestClient(
        create_app(MonitorSettings(database_url=sqlite_url, window_seconds=W))
    ) as client:
        client.put("/v1/models/credit", json=credit_model().model_dump())
        store = client.app.state.store
        for k in range(windows):
            store.save_window_result(_result(k * W).as_record())
        yield client


def test_since_and_until_bound_the_window_starts(sqlite_url) -> None:
    with _client(sqlite_url, 10) as client:
        starts = [
            w["window_start"] for w in client.get(URL, params={"since": 120, "until": 300}).json()
        ]
        assert starts == [300, 240, 180, 120]
        assert [w["window_start"] for w in client.get(URL, params={"since": 500}).json()] == [540]
        empty = client.get(URL, params={"since": 300, "until": 120})
        assert empty.status_code == 422 and "since" in empty.text
        assert client.get(URL, params={"until": -1}).status_code == 422


def test_every_window_is_reached_through_next_links(sqlite_url) -> None:
    with _client(sqlite_url, 2_300) as client:
        seen: list[float] = []
        response = client.get(URL, params={"limit": 1000})
        pages = 0
        while True:
            assert response.status_code == 200, response.text
            pages += 1
            seen += [w["window_start"] for w in response.json()]
            link = response.headers.get("link")
            if link is None:
                break
            assert link.endswith('>; rel="next"')
            response = client.get(link[1 : link.index(">")])
        assert pages == 3
        assert seen == [float(k * W) for k in reversed(range(2_300))]
        # The range still holds across pages.
        first = client.get(URL, params={"since": 600, "limit": 4})
        assert [w["window_start"] for w in first.json()] == [137_940, 137_880, 137_820, 137_760]
        link = first.headers["link"]
        assert "since=600" in link and "before=137760" in link
