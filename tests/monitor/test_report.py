"""The HTML report: built through the real API, opened in headless Chromium, saved."""

from __future__ import annotations

import http.server
import json
import logging
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from email.message import Message
from pathlib import Path

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from monitor import cli
from monitor.report import build_report
from monitor.settings import MonitorSettings
from tests.conftest import (
    ADMIN,
    INGEST_CREDIT,
    LiveMonitor,
    credit_event,
    credit_model,
    free_port,
)
from tests.headless import Chromium
from tests.monitor.test_scoring import reference_frame

W = 60
EVENTS_PER_WINDOW = 1500
MAX_ROWS = 1200
"""Over 1,000 reference rows Evidently decides on distances, not p-values: a sample
without drift then does not come out drifted by chance."""


class Windows:
    """A live monitor holding a reference and two windows of credit-v1 predictions:
    the older like the reference, the newer with everyone 30 years older."""

    def __init__(self, monitor: LiveMonitor) -> None:
        self.monitor = monitor
        rng = np.random.default_rng(7)
        self.call(
            "/v1/models/credit/versions/v1/reference",
            reference_frame(rng, 3000).to_csv(index=False).encode(),
            "text/csv",
            "PUT",
        )
        newest = time.time() // W * W - W
        self.starts = (newest - W, newest)
        self.values: list[str] = []
        """A few raw feature values sent, which no log line may hold."""
        for start, drifted in zip(self.starts, (False, True), strict=True):
            frame = reference_frame(rng, EVENTS_PER_WINDOW)
            self.values += [repr(float(x)) for x in frame["income"][:20]]
            if drifted:
                frame["age"] = frame["age"] + 30
            events = [
                {
                    "event_id": f"w{start:.0f}-{i}",
                    "model": "credit",
                    "model_version": "v1",
                    "timestamp": start + i * W / EVENTS_PER_WINDOW,
                    "outputs": {"predicted_class": int(r.target)},
                    "features": {
                        "income": r.income,
                        "age": r.age,
                        "region": r.region,
                        "has_card": bool(r.has_card),
                    },
                }
                for i, r in enumerate(frame.itertuples())
            ]
            self.call("/v1/ingest/predictions", orjson.dumps({"events": events}))

    def call(
        self,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
        method: str = "GET",
    ) -> tuple[int, Message, bytes]:
        if body is not None and method == "GET":
            method = "POST"
        request = urllib.request.Request(
            self.monitor.url + path,
            data=body,
            method=method,
            headers={"Content-Type": content_type},
        )
        try:
            with urllib.request.urlopen(request, timeout=300) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Windows]:
    path = tmp_path_factory.mktemp("report") / "m.db"
    monitor = LiveMonitor(
        MonitorSettings(
            database_url=f"sqlite:///{path}",
            port=free_port(),
            window_seconds=W,
            report_max_rows=MAX_ROWS,
        )
    )
    monitor.start()
    monitor.app.state.store.put_model(credit_model())
    try:
        yield Windows(monitor)
    finally:
        monitor.stop()


REPORT = "/v1/models/credit/versions/v1/report"


def test_the_report_renders_in_chromium_without_errors(windows: Windows, tmp_path: Path) -> None:
    started = time.perf_counter()
    status, headers, body = windows.call(REPORT)
    print(f"report of {MAX_ROWS} vs {MAX_ROWS} rows: {time.perf_counter() - started:.1f} s")
    assert status == 200, body[:500]
    assert headers["Content-Type"].startswith("text/html")
    assert "Content-Disposition" not in headers
    # Self-contained: no script, stylesheet or font fetched from anywhere.
    assert not re.search(rb"<(script|link|img)\b[^>]*\b(src|href)=[\"']?(https?:)?//", body)

    with Chromium(tmp_path / "profile") as page:
        page.open(windows.monitor.url + REPORT)
        text = page.wait_for(
            "document.querySelectorAll('.js-plotly-plot').length >= 4 "
            "&& document.body.innerText.includes('Drifted Columns') && document.body.innerText"
        )
        shot = page.screenshot(tmp_path / "report.png")
        print(f"screenshot: {shot}")
        assert page.errors() == [], page.errors()
        assert page.requests == [windows.monitor.url + REPORT], "the page fetched something"
    assert text, "the report did not render"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
    # The newest window by default, the one where everyone aged: Evidently finds age
    # drifted and nothing else.
    assert f"window_start={windows.starts[1]:.0f}" in text
    table = text[text.find("Data Drift Summary") :][:1500]
    assert re.search(r"age\s+num\s+Detected", table), table
    for feature, kind in (("income", "num"), ("region", "cat"), ("has_card", "cat")):
        assert re.search(rf"{feature}\s+{kind}\s+Not Detected", table), table
    assert "1 out of 4" in text and "Features: all 4." in text
    assert f"{MAX_ROWS:,} predictions drawn at random from the {EVENTS_PER_WINDOW:,}" in text
    assert f"{MAX_ROWS:,} of its 3,000 rows" in text


def test_download_names_the_file_and_any_time_in_a_window_selects_it(
    windows: Windows, caplog: pytest.LogCaptureFixture
) -> None:
    older = windows.starts[0]
    caplog.set_level(logging.DEBUG)
    status, headers, body = windows.call(f"{REPORT}?window_start={older + 17.5}&download=1")
    assert status == 200, body[:500]
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(older))
    assert headers["Content-Disposition"] == (
        f'attachment; filename="sidewatch-report-credit-v1-{stamp}.html"'
    )
    assert f"window_start={older:.0f}".encode() in body
    assert body.lstrip().startswith(b"<!DOCTYPE html>")
    # The log says what was compared, never a value.
    iso = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(older))
    assert f"report on credit v1, window {iso}: {MAX_ROWS} of {EVENTS_PER_WINDOW}" in caplog.text
    for value in windows.values:
        assert value not in caplog.text


def test_a_model_with_many_features_shows_the_drifted_ones_first(windows: Windows) -> None:
    store = windows.monitor.app.state.store
    windows.monitor.app.state.loop.run_once()  # the monitor's own verdicts on both windows
    newest, older = (
        build_report(store, "credit", "v1", window_seconds=W, window_start=start, max_features=2)
        for start in reversed(windows.starts)
    )
    assert newest.features == ("age", "income"), "age drifted in the monitor's eyes"
    assert older.features == ("income", "age"), "nothing drifted: as declared"
    assert newest.features_declared == 4
    assert "Features: 2 of 4, those the monitor found drifted in this window first" in (newest.html)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/models/nobody/versions/v1/report", "model 'nobody' is not registered"),
        ("/v1/models/credit/versions/v9/report", "has no version 'v9'"),
        (f"{REPORT}?window_start=1000", "holds no predictions; leave window_start out"),
    ],
)
def test_what_is_missing_is_a_404_saying_what_to_do(
    windows: Windows, path: str, expected: str
) -> None:
    status, _headers, body = windows.call(path)
    assert status == 404
    assert expected in orjson.loads(body)["detail"]


def test_a_version_without_reference_or_events_is_a_404(windows: Windows) -> None:
    status, _, _ = windows.call("/v1/models/credit/versions/v2", method="PUT")
    assert status == 200
    status, _, body = windows.call("/v1/models/credit/versions/v2/report")
    assert (status, orjson.loads(body)["detail"]) == (
        404,
        "credit v2 has no stored predictions yet; send events first "
        "(POST /v1/ingest/predictions, or a collector)",
    )
    event = {
        "event_id": "v2-0",
        "model": "credit",
        "model_version": "v2",
        "timestamp": time.time(),
        "outputs": {"predicted_class": 1},
        "features": {"income": 1.0, "age": 30.0, "region": "north", "has_card": True},
    }
    windows.call("/v1/ingest/predictions", orjson.dumps({"events": [event]}))
    status, _, body = windows.call("/v1/models/credit/versions/v2/report")
    assert status == 404
    assert (
        "upload one with PUT /v1/models/credit/versions/v2/reference"
        in orjson.loads(body)["detail"]
    )


def test_reports_need_the_admin_token(secured_api: TestClient) -> None:
    path = "/v1/models/credit/versions/v1/report"
    assert secured_api.get(path).status_code == 401
    ingest = secured_api.get(path, headers={"Authorization": f"Bearer {INGEST_CREDIT}"})
    assert ingest.status_code == 403
    admin = secured_api.get(path, headers={"Authorization": f"Bearer {ADMIN}"})
    assert admin.status_code == 404, "past auth: the version has no data"


def test_without_evidently_the_answer_names_the_extra(
    windows: Windows, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "evidently", None)
    status, _, body = windows.call(REPORT)
    assert status == 501
    assert "pip install 'sidewatch[reports]'" in orjson.loads(body)["detail"]


def test_the_cli_writes_the_same_report(
    windows: Windows, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("SIDEWATCH_WINDOW_SECONDS", str(W))
    url = windows.monitor.settings.database_url
    out = tmp_path / "r.html"
    code = cli.main(
        ["report", "--model", "credit", "--version", "v1", "--database-url", url,
         "--window-start", str(windows.starts[0]), "--max-rows", "200", "--out", str(out)]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    page = out.read_text()
    assert f"window_start={windows.starts[0]:.0f}" in page
    assert f"200 predictions drawn at random from the {EVENTS_PER_WINDOW:,}" in page
    assert f"wrote {out}: 200 of {EVENTS_PER_WINDOW}" in capsys.readouterr().out
    code = cli.main(["report", "--model", "credit", "--version", "v9", "--database-url", url])
    assert code == 1
    assert "has no version 'v9'" in capsys.readouterr().err


def test_the_monitor_imports_evidently_only_for_a_report() -> None:
    code = "import sys, monitor.api; print('evidently' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_store_samples_a_window_without_replacement(api: TestClient) -> None:
    """On SQLite and PostgreSQL: the count is the window's, the sample is capped."""
    events = [credit_event(i, timestamp=1_700_000_000 + i) for i in range(300)]
    assert api.post("/v1/ingest/predictions", json={"events": events}).status_code == 200
    store = api.app.state.store  # type: ignore[attr-defined]
    window = (1_700_000_100, 1_700_000_200)
    total, rows = store.sample_predictions("credit", "v1", *window, 40)
    assert total == 100 and len(rows) == 40
    incomes = [f["income"] for f, _ in rows]
    assert len(set(incomes)) == 40, "drawn without replacement"
    assert all(1100 <= x < 1200 for x in incomes), "only the window's rows"
    total, rows = store.sample_predictions("credit", "v1", *window, 1000)
    assert (total, len(rows)) == (100, 100)
    assert store.newest_prediction_time("credit", "v1") == 1_700_000_299
    assert store.newest_prediction_time("credit", "v2") is None
    assert store.reference_data("credit", "v1") is None


class Hits(http.server.ThreadingHTTPServer):
    """A local server that records every path asked of it, and serves ``pages``."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self.pages: dict[str, tuple[bytes, dict[str, str]]] = {}
        hits = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                hits.paths.append(self.path)
                body, headers = hits.pages.get(self.path, (b"", {}))
                self.send_response(200)
                for name, value in {"Content-Type": "text/html", **headers}.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *_args: object) -> None:
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_port}"


def hostile_values(url: str) -> list[str]:
    """Category values that run script wherever they are written raw into the page."""
    act = f"document.title='pwned';window.pwned=1;fetch('{url}/ran')"
    return [
        f"</script><script>{act}</script>",
        f"</SCRIPT ><script>{act}</script><!--",
        f'<img src=x onerror="{act}">',
        f"\u2028\u2029<!--<script>{act}</script>",
        f'&lt;b&gt; & <svg onload="{act}">',
    ]


def test_hostile_category_values_never_run_in_the_report(tmp_path: Path) -> None:
    hits = Hits()
    threading.Thread(target=hits.serve_forever, daemon=True).start()
    monitor = LiveMonitor(
        MonitorSettings(
            database_url=f"sqlite:///{tmp_path / 'm.db'}",
            port=free_port(),
            window_seconds=W,
            report_max_rows=MAX_ROWS,
        )
    )
    monitor.start()
    try:
        monitor.app.state.store.put_model(credit_model())
        windows = Windows.__new__(Windows)
        windows.monitor = monitor
        rng = np.random.default_rng(3)
        # Over 1,000 rows: Evidently's chi-square (its test below that) fails on
        # categories the reference lacks, and these values are new.
        csv = reference_frame(rng, 1500).to_csv(index=False).encode()
        assert (
            windows.call(REPORT.replace("/report", "/reference"), csv, "text/csv", "PUT")[0] == 201
        )
        frame = reference_frame(rng, 400)
        values = hostile_values(hits.url)
        start = time.time() // W * W - W
        events = [
            {
                "event_id": f"h-{i}",
                "model": "credit",
                "model_version": "v1",
                "timestamp": start + i * W / 400,
                "outputs": {"predicted_class": int(r.target)},
                "features": {
                    "income": r.income,
                    "age": r.age,
                    "region": values[i % len(values)] if i % 4 == 0 else r.region,
                    "has_card": bool(r.has_card),
                },
            }
            for i, r in enumerate(frame.itertuples())
        ]
        status, _, body = windows.call("/v1/ingest/predictions", orjson.dumps({"events": events}))
        assert status == 200, body

        status, headers, page = windows.call(REPORT)
        assert status == 200, page[:500]
        policy = headers.get("Content-Security-Policy", "")
        # Defence in depth: the same page with a script slipped in, served with the same
        # policy, does not run it either.
        tampered = page.replace(b"<body>", f"<body>{values[0][9:]}".encode(), 1)
        hits.pages["/tampered"] = (tampered, {"Content-Security-Policy": policy})

        with Chromium(tmp_path / "profile") as browser:
            browser.open(monitor.url + REPORT)
            rendered = browser.wait_for(
                "document.querySelectorAll('.js-plotly-plot').length >= 4 "
                "&& document.body.innerText.includes('Drifted Columns')"
            )
            title = browser.evaluate("document.title")
            ran = browser.evaluate("typeof window.pwned")
            errors = browser.errors()
            browser.open(hits.url + "/tampered")
            tampered_title = browser.evaluate("document.title")
            tampered_ran = browser.evaluate("typeof window.pwned")
            refused = browser.errors()
        assert "/ran" not in hits.paths, "a hostile value ran and called out"
        assert title.startswith("Sidewatch report: credit v1") and ran == "undefined", title
        assert rendered, "the report did not render with hostile values in it"
        assert errors == [], errors
        for value in values:
            assert value.encode() not in page, "a value written raw into the page"
        assert "script-src 'sha256-" in policy and "'unsafe-inline'" not in policy.split(";")[0]
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert tampered_title.startswith("Sidewatch report") and tampered_ran == "undefined"
        assert any("Content Security Policy" in e for e in refused), refused
        assert hits.paths == ["/tampered"]
    finally:
        monitor.stop()
        hits.shutdown()
        hits.server_close()


def test_json_in_a_script_keeps_its_value_and_loses_its_markup() -> None:
    from monitor.report.page import script_json

    value = {"a</script><!--": ["<b>&amp;\u2028\u2029", "\\<", 1.5, None]}
    for text in (json.dumps(value), json.dumps(value, ensure_ascii=False)):
        safe = script_json(text)
        assert json.loads(safe) == value
        assert not set(safe) & set("<>&\u2028\u2029")


def test_a_new_category_beside_a_small_reference_still_renders(windows: Windows) -> None:
    # Below 1,000 reference rows Evidently tests a category with chi-squared; a value
    # the reference never had has an expected count of zero, and numpy warns about the
    # division: wherever warnings are errors, the report was a 500.
    rng = np.random.default_rng(11)
    reference = reference_frame(rng, 300)
    csv = reference.to_csv(index=False).encode()
    status, _, _ = windows.call("/v1/models/credit/versions/v3/reference", csv, "text/csv", "PUT")
    assert status == 201
    start = time.time() // W * W - W
    events = [
        {"event_id": f"v3-{i}", "model": "credit", "model_version": "v3",
         "timestamp": start + i * W / 300, "outputs": {"predicted_class": int(r.target)},
         "features": {"income": r.income, "age": r.age, "has_card": bool(r.has_card),
                      "region": "atlantis" if i % 3 == 0 else r.region}}
        for i, r in enumerate(reference_frame(rng, 300).itertuples())
    ]  # fmt: skip
    assert windows.call("/v1/ingest/predictions", orjson.dumps({"events": events}))[0] == 200
    status, _, body = windows.call(f"/v1/models/credit/versions/v3/report?window_start={start}")
    assert status == 200, body[:500]
    assert b"region" in body
