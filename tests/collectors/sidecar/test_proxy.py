"""The proxy relays HTTP/1.1 exactly: keep-alive, pipelining, chunked bodies, HEAD, trace
context, and it fails open when the monitor or the model is away."""

from __future__ import annotations

import http.client
import os
import socket
import time
import urllib.request
from pathlib import Path

import orjson
from websockets.sync.client import connect

from tests.collectors.sidecar.helpers import SHIP_TIMEOUT, SidecarProcess, refused_port
from tests.conftest import LiveMonitor

GOOD = b'{"dataframe_split": {"columns": ["a"], "data": [[0.5]]}}'


def raw_exchange(port: int, data: bytes, expect_responses: int) -> bytes:
    """Send raw bytes on one connection; read until ``expect_responses`` bodies came."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        received = b""
        deadline = time.monotonic() + 30
        while received.count(b'"predictions"') < expect_responses:
            if time.monotonic() > deadline:
                break
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
        return received


def strip_dates(raw: bytes) -> bytes:
    return b"\r\n".join(line for line in raw.split(b"\r\n") if not line.startswith(b"date:"))


def request(path: str, body: bytes, extra: bytes = b"") -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" % path.encode()
    return head + b"Content-Length: %d\r\n%s\r\n%s" % (len(body), extra, body)


def test_pipelined_keep_alive_requests_come_back_byte_for_byte(
    echo_upstream: str, echo_sidecar: SidecarProcess
) -> None:
    data = request("/invocations", GOOD) * 3 + request("/chunked", GOOD)
    upstream_port = int(echo_upstream.rsplit(":", 1)[1])
    direct = raw_exchange(upstream_port, data, 4)
    through = raw_exchange(echo_sidecar.port, data, 4)
    assert direct.count(b"HTTP/1.1 200") == 4
    assert b"transfer-encoding: chunked" in direct
    assert strip_dates(through) == strip_dates(direct)


def test_chunked_request_body_is_relayed_and_captured(
    echo_upstream: str, echo_sidecar: SidecarProcess
) -> None:
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(GOOD[i : i + 5]), GOOD[i : i + 5])
                       for i in range(0, len(GOOD), 5)) + b"0\r\n\r\n"  # fmt: skip
    data = (b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n" + chunked)  # fmt: skip
    through = raw_exchange(echo_sidecar.port, data, 1)
    body = through.split(b"\r\n\r\n", 1)[1]
    assert orjson.loads(body)["echo"]["length"] == len(GOOD)
    deadline = time.monotonic() + SHIP_TIMEOUT
    while echo_sidecar.metric("sidewatch_sidecar_events_captured_total", model="m1") < 1:
        assert time.monotonic() < deadline, "the chunked request was not captured"
        time.sleep(0.1)


def test_head_and_get_pass_through(echo_upstream: str, echo_sidecar: SidecarProcess) -> None:
    for method in ("HEAD", "GET"):
        answers = []
        for base in (echo_upstream, echo_sidecar.url):
            host, port = base.removeprefix("http://").split(":")
            conn = http.client.HTTPConnection(host, int(port), timeout=10)
            conn.request(method, "/invocations")
            r = conn.getresponse()
            answers.append((r.status, r.read(), r.getheader("content-length")))
            conn.close()
        assert answers[0] == answers[1]


def test_an_upgrade_to_websocket_is_tunnelled(echo_sidecar: SidecarProcess) -> None:
    with connect(f"ws://127.0.0.1:{echo_sidecar.port}/ws", open_timeout=30) as ws:
        for text in ("one", "two" * 1000):
            ws.send(text)
            assert ws.recv(timeout=30) == text
        ws.send(b"\x00\xff" * 100)
        assert ws.recv(timeout=30) == b"\x00\xff" * 100
    assert echo_sidecar.metric("sidewatch_sidecar_requests_total", model="m1", code="1xx") == 1
    assert echo_sidecar.metric("sidewatch_sidecar_unframed_connections_total") == 0


def test_the_shipper_runs_only_on_cpu_time_nothing_else_wants(echo_sidecar: SidecarProcess
                                                             ) -> None:  # fmt: skip
    assert echo_sidecar.process is not None
    pid = echo_sidecar.process.pid
    deadline = time.monotonic() + 30
    while True:  # the shipper sets its policy as it starts
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        policies = [os.sched_getscheduler(int(child)) for child in children]
        if policies == [os.SCHED_IDLE] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert policies == [os.SCHED_IDLE]


def test_the_trace_context_continues_upstream_and_lands_in_the_event(
    echo_sidecar: SidecarProcess, echo_monitor: LiveMonitor
) -> None:
    trace, parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    req = urllib.request.Request(
        echo_sidecar.url + "/invocations", data=GOOD, method="POST",
        headers={"Content-Type": "application/json", "X-Request-Id": "traced-1",
                 "traceparent": f"00-{trace}-{parent}-01"})  # fmt: skip
    echo = orjson.loads(urllib.request.urlopen(req, timeout=10).read())["echo"]
    version, seen_trace, span, flags = echo["traceparent"].split("-")
    assert (version, seen_trace, flags) == ("00", trace, "01")
    assert len(span) == 16 and span != parent  # the sidecar's own span, a child of the caller's
    store = echo_monitor.app.state.store
    deadline = time.monotonic() + SHIP_TIMEOUT
    while True:
        with store.engine.connect() as conn:
            row = conn.exec_driver_sql(
                "SELECT trace_id, parent_span_id FROM predictions WHERE correlation_key = ?",
                ("traced-1",)).fetchone()  # fmt: skip
        if row is not None or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert row is not None and tuple(row) == (trace, parent)


def test_monitor_down_changes_nothing_for_callers_and_ready_stays_up(
    echo_upstream: str, tmp_path: Path
) -> None:
    with refused_port() as port:
        car = SidecarProcess(echo_upstream, f"http://127.0.0.1:{port}", tmp_path / "spool",
                             args=["--model", "m1", "--version", "v1"]).start()  # fmt: skip
        monitor_down_changes_nothing(car)


def monitor_down_changes_nothing(car: SidecarProcess) -> None:
    try:
        for _ in range(20):
            req = urllib.request.Request(
                car.url + "/invocations",
                data=GOOD,
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(req, timeout=10) as r:
                assert r.status == 200
        assert urllib.request.urlopen(car.admin + "/readyz", timeout=5).status == 200
        assert urllib.request.urlopen(car.admin + "/livez", timeout=5).status == 200
        deadline = time.monotonic() + SHIP_TIMEOUT
        while car.metric("sidewatch_sidecar_ship_failures_total") == 0:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert car.metric("sidewatch_sidecar_spool_bytes") > 0  # kept for later delivery
        assert car.metric("sidewatch_sidecar_requests_total", model="m1", code="2xx") == 20
        assert car.metric("sidewatch_sidecar_connections_total") == 20  # urllib: one each
        deadline = time.monotonic() + 10
        while car.metric("sidewatch_sidecar_open_connections") != 0:  # closed by now
            assert time.monotonic() < deadline
            time.sleep(0.1)
    finally:
        car.stop()


def test_model_down_answers_502_and_counts(echo_monitor: LiveMonitor, tmp_path: Path) -> None:
    with refused_port() as port:
        car = SidecarProcess(f"http://127.0.0.1:{port}", echo_monitor.url, tmp_path / "s",
                             args=["--model", "m1", "--version", "v1"]).start()  # fmt: skip
        model_down_answers_502(car)


def model_down_answers_502(car: SidecarProcess) -> None:
    try:
        req = urllib.request.Request(car.url + "/invocations", data=GOOD, method="POST")
        try:
            urllib.request.urlopen(req, timeout=10)
            raise AssertionError("expected 502")
        except urllib.error.HTTPError as exc:
            assert exc.code == 502
        assert car.metric("sidewatch_sidecar_upstream_errors_total") == 1
    finally:
        car.stop()


def test_sampling_keeps_the_configured_share(
    echo_upstream: str, echo_monitor: LiveMonitor, tmp_path: Path
) -> None:
    car = SidecarProcess(echo_upstream, echo_monitor.url, tmp_path / "spool",
                         env={"SIDEWATCH_SIDECAR_SAMPLE_RATE": "0.2"},
                         args=["--model", "m1", "--version", "v1"]).start()  # fmt: skip
    try:
        n = 500
        for _ in range(n):
            req = urllib.request.Request(
                car.url + "/invocations",
                data=GOOD,
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            urllib.request.urlopen(req, timeout=10).close()
        sampled_out = car.metric("sidewatch_sidecar_sampled_out_total")
        # Binomial(500, 0.8): mean 400, sd 8.9; 6 sd either side
        assert 346 <= sampled_out <= 454, sampled_out
    finally:
        car.stop()


def test_the_models_errors_are_counted_not_shipped_as_predictions(
    echo_monitor: LiveMonitor, echo_sidecar: SidecarProcess
) -> None:
    def post(status: int) -> int:
        req = urllib.request.Request(echo_sidecar.url + "/invocations", data=GOOD, method="POST",
                                     headers={"Content-Type": "application/json",
                                              "x-echo-status": str(status)})  # fmt: skip
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    # The errors first: once the last (good) exchange is captured, they were decoded too.
    assert [post(s) for s in (404, 500, 500, 200)] == [404, 500, 500, 200]
    deadline = time.monotonic() + SHIP_TIMEOUT
    while echo_sidecar.metric("sidewatch_sidecar_shipped_events_total") < 1:
        assert time.monotonic() < deadline, "the good prediction was not shipped"
        time.sleep(0.1)
    assert echo_sidecar.metric("sidewatch_sidecar_events_captured_total", model="m1") == 1
    assert echo_sidecar.metric("sidewatch_sidecar_capture_dropped_total",
                               reason="model_error") == 3  # fmt: skip
    assert echo_sidecar.metric("sidewatch_sidecar_requests_total", model="m1", code="4xx") == 1
    assert echo_sidecar.metric("sidewatch_sidecar_requests_total", model="m1", code="5xx") == 2
