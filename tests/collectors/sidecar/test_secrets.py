"""Secrets at rest: no credential, and no denied or redacted value, is ever written to
the spool, while the model still receives the request as sent."""

from __future__ import annotations

import hashlib
import hmac
import urllib.request
from collections.abc import Callable
from pathlib import Path

import orjson

from tests.collectors.sidecar.echo_app import SET_COOKIE
from tests.collectors.sidecar.helpers import SidecarProcess, refused_port

TOKEN = b"tok-5ecret-0123456789"
PROXY_TOKEN = b"pr0xy-5ecret-0123456789"
COOKIE = b"c00kie-5ecret-abcdef"
CARD = "4111-1111-1111-1111"
EMAIL = "jane.doe@example.com"
KEY = "k" * 32
BODY = orjson.dumps({"dataframe_records": [{"credit card": CARD, "email": EMAIL, "a": 0.5}]})


def _spooled(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


def _post(car: SidecarProcess) -> None:
    req = urllib.request.Request(car.url + "/invocations", data=BODY, method="POST", headers={
        "Content-Type": "application/json", "Authorization": f"Bearer {TOKEN.decode()}",
        "Proxy-Authorization": f"Basic {PROXY_TOKEN.decode()}",
        "Cookie": f"session={COOKIE.decode()}; theme=dark",
        "x-echo-set-cookie": "1"})  # fmt: skip
    with urllib.request.urlopen(req, timeout=10) as r:
        answer = orjson.loads(r.read())
        assert r.headers["set-cookie"] == SET_COOKIE.decode()
    # Only the copy loses them: the model got the request as the caller sent it.
    sent = hashlib.sha256(b"Bearer " + TOKEN).hexdigest()
    assert answer["echo"]["authorization_sha256"] == sent


def _run(upstream: str, spool: Path, env: dict[str, str],
         check: Callable[[SidecarProcess], None] = lambda car: None) -> bytes:  # fmt: skip
    # The monitor is away: everything captured stays in the spool, to be read.
    with refused_port() as port:
        car = SidecarProcess(upstream, f"http://127.0.0.1:{port}", spool, env=env,
                             args=["--model", "m1", "--version", "v1"]).start()  # fmt: skip
        try:
            for _ in range(3):
                _post(car)
            check(car)
        finally:
            car.stop()
    # The record is appended before the response's last bytes leave the sidecar.
    return _spooled(spool)


def test_credentials_never_reach_the_spool(echo_upstream: str, tmp_path: Path) -> None:
    spooled = _run(echo_upstream, tmp_path / "spool", {})
    assert spooled.count(b"credit card") == 3  # the raw exchanges are there...
    for secret in (TOKEN, PROXY_TOKEN, COOKIE, SET_COOKIE):  # ...without their credentials
        assert secret not in spooled
    assert b"theme=dark" not in spooled  # the whole Cookie header goes


def test_denied_and_redacted_values_never_reach_the_spool(
    echo_upstream: str, tmp_path: Path
) -> None:
    env = {"SIDEWATCH_SIDECAR_DENY_FEATURES": '["credit_card"]',
           "SIDEWATCH_SIDECAR_REDACT_FEATURES": '["email"]',
           "SIDEWATCH_SIDECAR_REDACTION_KEY": KEY}  # fmt: skip

    def captured_before_the_spool(car: SidecarProcess) -> None:
        assert car.metric("sidewatch_sidecar_events_captured_total", model="m1") == 3

    spooled = _run(echo_upstream, tmp_path / "spool", env, captured_before_the_spool)
    for secret in (TOKEN, PROXY_TOKEN, COOKIE, SET_COOKIE, CARD.encode(), EMAIL.encode()):
        assert secret not in spooled
    # What may leave is there: the redacted value's keyed hash, once per request.
    digest = hmac.new(KEY.encode(), repr(EMAIL).encode(), hashlib.sha256).hexdigest()[:24]
    assert spooled.count(f"h:{digest}".encode()) == 3
