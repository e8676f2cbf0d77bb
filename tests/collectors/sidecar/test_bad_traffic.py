"""Bad traffic through the sidecar: the model's answer passes unchanged, the capture is
skipped and counted by reason, and the sidecar's memory stays bounded."""

from __future__ import annotations

import gzip
import http.client
import time

import orjson
import pytest

from tests.collectors.sidecar.helpers import SHIP_TIMEOUT, SidecarProcess

MB = 1024 * 1024


def send(base: str, path: str, body: bytes, headers: dict[str, str] | None = None
         ) -> tuple[int, bytes, str | None]:  # fmt: skip
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        conn.request("POST", path, body, {"Content-Type": "application/json"} | (headers or {}))
        response = conn.getresponse()
        return response.status, response.read(), response.getheader("content-type")
    finally:
        conn.close()


def dropped(car: SidecarProcess, reason: str) -> float:
    return car.metric("sidewatch_sidecar_capture_dropped_total", reason=reason)


def wait_counted(car: SidecarProcess, expected: dict[str, float],
                 timeout: float = SHIP_TIMEOUT) -> None:  # fmt: skip
    deadline = time.monotonic() + timeout
    got: dict[str, float] = {}
    while time.monotonic() < deadline:
        got = {reason: dropped(car, reason) for reason in expected}
        if got == expected:
            return
        time.sleep(0.1)
    assert got == expected


BOMB = gzip.compress(b" " * (64 * MB), compresslevel=9)  # 64 MiB of JSON whitespace

CASES = {
    "malformed_json": ("/invocations", b'{"dataframe_split": {"columns": ["a"], "data": [[1]', {}),
    "non_finite": ("/invocations", b'{"dataframe_split": {"columns": ["a"], "data": [[NaN]]}}', {}),
    "infinity": ("/invocations", b'{"dataframe_records": [{"a": Infinity}]}', {}),
    "not_utf8": ("/invocations", b'{"dataframe_records": [{"a": "\xff\xfe"}]}', {}),
    "unknown_format": ("/score/custom", b'{"rows": [[1, 2]]}', {}),
    "too_large": ("/invocations", b'{"instances": [' + b"1," * (5 * MB) + b"1]}", {}),
    "gzip_bomb": ("/invocations", BOMB, {"Content-Encoding": "gzip"}),
}
REASON = {"infinity": "non_finite", "gzip_bomb": "too_large"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_requests_pass_unchanged_and_their_capture_is_counted(
    case: str, echo_upstream: str, echo_sidecar: SidecarProcess
) -> None:
    path, body, headers = CASES[case]
    direct = send(echo_upstream, path, body, headers)
    through = send(echo_sidecar.url, path, body, headers)
    assert through == direct
    assert orjson.loads(direct[1])["echo"]["length"] == len(body)
    reason = REASON.get(case, case)
    wait_counted(echo_sidecar, {reason: 1.0})
    assert echo_sidecar.metric("sidewatch_sidecar_events_captured_total", model="m1") == 0


def test_a_good_request_beside_bad_ones_is_captured(
    echo_upstream: str, echo_sidecar: SidecarProcess
) -> None:
    good = b'{"dataframe_split": {"columns": ["a"], "data": [[0.5]]}}'
    for path, body, headers in CASES.values():
        send(echo_sidecar.url, path, body, headers)
    assert send(echo_sidecar.url, "/invocations", good) == send(echo_upstream, "/invocations", good)
    deadline = time.monotonic() + SHIP_TIMEOUT
    while time.monotonic() < deadline:
        if echo_sidecar.metric("sidewatch_sidecar_shipped_events_total") == 1:
            break
        time.sleep(0.1)
    assert echo_sidecar.metric("sidewatch_sidecar_events_captured_total", model="m1") == 1
    assert echo_sidecar.metric("sidewatch_sidecar_shipped_events_total") == 1
    total = sum(
        dropped(echo_sidecar, r)
        for r in ("malformed_json", "non_finite", "not_utf8", "unknown_format", "too_large")
    )
    assert total == len(CASES)


def test_memory_stays_bounded_under_large_bodies(
    echo_upstream: str, echo_sidecar: SidecarProcess
) -> None:
    big = b'{"instances": [' + b"1," * (5 * MB) + b"1]}"  # 10 MiB
    send(echo_sidecar.url, "/invocations", big)
    before = echo_sidecar.rss_bytes()
    for _ in range(20):  # 200 MiB through the proxy, and 20 gzip bombs
        assert send(echo_sidecar.url, "/invocations", big)[0] == 200
        send(echo_sidecar.url, "/invocations", BOMB, {"Content-Encoding": "gzip"})
    wait_counted(echo_sidecar, {"too_large": 41.0})  # the shipper decoded every exchange
    growth = echo_sidecar.rss_bytes() - before
    print(f"\nsidecar RSS {before / MB:.0f} MiB before, grew {growth / MB:.1f} MiB after "
          "200 MiB of large bodies and 20 gzip bombs")  # fmt: skip
    assert growth < 48 * MB
