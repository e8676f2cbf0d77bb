"""Limits: slow, idle or stalled callers cannot take the connections that others need;
each closing is counted."""

from __future__ import annotations

import select
import socket
import time
import urllib.request
from pathlib import Path

from tests.collectors.sidecar.helpers import SidecarProcess
from tests.conftest import LiveMonitor

GOOD = b'{"dataframe_split": {"columns": ["a"], "data": [[0.5]]}}'
PARTIAL_HEAD = b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


class _LowFileLimit(SidecarProcess):
    """The sidecar under a file descriptor limit of ``nofile``."""

    nofile = 256

    @property
    def command(self) -> list[str]:
        return ["prlimit", f"--nofile={self.nofile}:{self.nofile}", "--", *super().command]


def _post(url: str, timeout: float) -> int:
    req = urllib.request.Request(url + "/invocations", data=GOOD, method="POST",
                                 headers={"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=timeout) as r:
        r.read()
        return int(r.status)


def _read_until_closed(sock: socket.socket) -> bytes:
    received = b""
    try:
        while chunk := sock.recv(65536):
            received += chunk
    except ConnectionResetError:  # closed while our bytes were arriving
        pass
    return received


def test_slow_callers_beyond_the_file_limit_leave_normal_requests_served(
    echo_upstream: str, echo_monitor: LiveMonitor, tmp_path: Path
) -> None:
    # 300 connections that never finish their head, against 256 descriptors: before the
    # limits, they took every descriptor and no normal request was served.
    car = _LowFileLimit(echo_upstream, echo_monitor.url, tmp_path / "spool",
                        args=["--model", "m1", "--version", "v1"]).start()  # fmt: skip
    slow: list[socket.socket] = []
    try:
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", car.port), timeout=10)
            sock.sendall(PARTIAL_HEAD)
            slow.append(sock)
        served = [_post(car.url, timeout=5) for _ in range(20)]
        assert served == [200] * 20
        assert car.metric("sidewatch_sidecar_max_connections") == (256 - 64) // 2
        assert car.metric("sidewatch_sidecar_limits_total", limit="connections_evicted") >= 300 - 96
        assert car.metric("sidewatch_sidecar_open_connections") <= 96
    finally:
        for sock in slow:
            sock.close()
        car.stop()


def test_header_idle_and_body_rate_limits_close_and_count(
    echo_upstream: str, echo_monitor: LiveMonitor, tmp_path: Path
) -> None:
    car = SidecarProcess(echo_upstream, echo_monitor.url, tmp_path / "spool", env={
        "SIDEWATCH_SIDECAR_HEADER_TIMEOUT_SECONDS": "0.5",
        "SIDEWATCH_SIDECAR_IDLE_TIMEOUT_SECONDS": "0.5",
        "SIDEWATCH_SIDECAR_BODY_TIMEOUT_SECONDS": "0.5",
        "SIDEWATCH_SIDECAR_BODY_MIN_RATE_BYTES": "1000"},
        args=["--model", "m1", "--version", "v1"]).start()  # fmt: skip
    try:
        started = time.monotonic()
        # A head that never ends: answered 408, closed.
        with socket.create_connection(("127.0.0.1", car.port), timeout=10) as sock:
            sock.sendall(PARTIAL_HEAD)
            assert _read_until_closed(sock).startswith(b"HTTP/1.1 408 ")
        # A keep-alive connection left idle after its response: closed.
        with socket.create_connection(("127.0.0.1", car.port), timeout=10) as sock:
            sock.sendall(PARTIAL_HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(GOOD), GOOD))
            answer = _read_until_closed(sock)
            assert answer.startswith(b"HTTP/1.1 200 ") and answer.count(b"HTTP/1.1") == 1
        # A connection opened ahead and never used: closed without a word (a 408 would
        # be read as the answer to the request a pool sends on it later).
        with socket.create_connection(("127.0.0.1", car.port), timeout=10) as sock:
            assert _read_until_closed(sock) == b""
        # A body trickling at 20 bytes a second: closed.
        with socket.create_connection(("127.0.0.1", car.port), timeout=10) as sock:
            sock.sendall(PARTIAL_HEAD + b"Content-Length: 100000\r\n\r\n")
            for _ in range(100):  # at most 10 s
                try:
                    sock.sendall(b"  ")
                except (BrokenPipeError, ConnectionResetError):
                    break
                # The trickle's pace; returns at once when the sidecar closes.
                if select.select([sock], [], [], 0.1)[0]:
                    break
            assert _read_until_closed(sock) == b""
        assert time.monotonic() - started < 10
        for limit, n in (("header_timeout", 1), ("idle_timeout", 2), ("body_rate", 1)):
            assert car.metric("sidewatch_sidecar_limits_total", limit=limit) == n, limit
        assert _post(car.url, timeout=10) == 200  # normal callers are served as before
    finally:
        car.stop()


def _read_response(sock: socket.socket) -> bytes:
    """One whole response (head and Content-Length body): until its last byte is in,
    the proxy still has the exchange under way (a loaded machine splits the writes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536)
    return data[: len(head) + 4] + body


def test_at_the_cap_with_every_request_under_way_a_new_connection_is_refused(
    echo_upstream: str, echo_monitor: LiveMonitor, tmp_path: Path
) -> None:
    car = SidecarProcess(echo_upstream, echo_monitor.url, tmp_path / "spool",
                         env={"SIDEWATCH_SIDECAR_MAX_CONNECTIONS": "2"},
                         args=["--model", "m1", "--version", "v1"]).start()  # fmt: skip
    head = PARTIAL_HEAD + b"Content-Length: %d\r\n\r\n" % len(GOOD)
    busy = [socket.create_connection(("127.0.0.1", car.port), timeout=10) for _ in range(2)]
    try:
        for sock in busy:  # a request under way on each: its body half sent
            sock.sendall(head + GOOD[:10])
        deadline = time.monotonic() + 10
        while car.metric("sidewatch_sidecar_open_connections") < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", car.port), timeout=10) as third:
            third.sendall(head + GOOD)
            assert _read_until_closed(third) == b""  # refused: no answer
        assert car.metric("sidewatch_sidecar_limits_total", limit="connections_refused") == 1
        busy[0].sendall(GOOD[10:])  # the first request ends; its connection stays open
        assert _read_response(busy[0]).startswith(b"HTTP/1.1 200 ")
        assert _post(car.url, timeout=10) == 200  # room made: the idle one is closed
        assert car.metric("sidewatch_sidecar_limits_total", limit="connections_evicted") == 1
    finally:
        for sock in busy:
            sock.close()
        car.stop()
