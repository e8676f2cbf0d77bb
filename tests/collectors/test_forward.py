"""Spool → forwarder → monitor: at least once on the wire, exactly once in the store."""

from __future__ import annotations

import gzip
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import orjson
import pytest

from collectors.contract import MAX_BATCH_EVENTS
from collectors.forward import Forwarder
from collectors.record import EXCHANGE, encode
from collectors.spool import Spool
from collectors.transport import HttpTransport, Kind, SendResult
from tests.conftest import LiveMonitor, credit_event, credit_model, free_port


def test_spooled_events_and_labels_reach_the_monitor(
    live_monitor: LiveMonitor, tmp_path: Path
) -> None:
    spool = Spool(tmp_path / "spool", sync="none")
    for i in range(3000):
        spool.append(encode("predictions", orjson.dumps(credit_event(i))))
    label = {
        "event_id": "lab-1",
        "model": "credit",
        "prediction_id": "ev-1",
        "value": 1,
        "timestamp": 1,
    }
    spool.append(encode("labels", orjson.dumps(label)))
    spool.append(b"x-unknown-kind")
    forwarder = Forwarder(spool, HttpTransport(live_monitor.url, None, 10), batch_size=500)
    while forwarder.forward_once():
        pass
    stats = forwarder.stats()
    assert (stats.delivered, stats.stored, stats.duplicates) == (3001, 3001, 0)
    assert stats.quarantined == {"malformed": 1}
    [kept] = forwarder.quarantine.read()
    assert kept.raw == b"x-unknown-kind"
    assert live_monitor.app.state.store.count_predictions() == 3000
    assert spool.read(10)[0] == []
    forwarder.stop()
    spool.close()


class FlakyTransport:
    """Passes batches to a real transport; can be told how to answer instead."""

    def __init__(self, real: HttpTransport) -> None:
        self.real = real
        self.sizes: list[int] = []
        self.answer: SendResult | None = None

    def send(self, kind: Kind, body: bytes, *, gzipped: bool = False) -> SendResult:
        self.sizes.append(gzip.decompress(body).count(b'"event_id"') if gzipped else 0)
        return self.answer or self.real.send(kind, body, gzipped=gzipped)

    def close(self) -> None:
        self.real.close()


def forwarder_for(spool: Spool, url: str, **options) -> tuple[Forwarder, FlakyTransport]:
    transport = FlakyTransport(HttpTransport(url, options.pop("token", None), 10))
    options = {"retry_initial_seconds": 0.01, "retry_max_seconds": 0.05} | options
    return Forwarder(spool, transport, **options), transport


def drain(forwarder: Forwarder) -> None:
    while forwarder.forward_once():
        pass


def test_a_backlog_of_multi_row_records_is_cut_to_what_the_monitor_accepts(
    live_monitor: LiveMonitor, tmp_path: Path
) -> None:
    # 600 spooled requests of 20 rows each, read 1,000 records at a time, made one
    # batch of 12,000 events: the monitor refused it (over 10,000) and all were lost.
    spool = Spool(tmp_path / "spool", sync="none")
    for r in range(600):
        spool.append(EXCHANGE + b"%d" % r)

    def expand(record: bytes) -> list[bytes]:
        r = int(record[1:])
        return [encode("predictions", orjson.dumps(credit_event(r * 20 + i))) for i in range(20)]

    forwarder, transport = forwarder_for(spool, live_monitor.url, expand=expand)
    drain(forwarder)
    assert live_monitor.app.state.store.count_predictions() == 12_000
    assert max(transport.sizes) <= MAX_BATCH_EVENTS and sum(transport.sizes) == 12_000
    assert forwarder.stats().quarantined == {}
    forwarder.stop()
    spool.close()


def test_a_batch_the_monitor_fails_on_never_blocks_the_stream(
    live_monitor: LiveMonitor, tmp_path: Path, monkeypatch
) -> None:
    # An event the store could not take (a 500) made its batch retry forever, and
    # nothing behind it was ever stored. Now the batch is halved down to that event.
    spool = Spool(tmp_path / "spool", sync="none")
    for i in range(100):
        spool.append(encode("predictions", orjson.dumps(credit_event(i))))
    store = live_monitor.app.state.store
    real_insert = store.insert_predictions

    def broken(rows, profiles=None):
        if any(r["event_id"] == "ev-37" for r in rows):
            raise RuntimeError("the store broke on this event")
        return real_insert(rows, profiles)

    monkeypatch.setattr(store, "insert_predictions", broken)
    forwarder, transport = forwarder_for(spool, live_monitor.url, batch_size=100)
    drain(forwarder)
    assert store.count_predictions() == 99
    assert forwarder.stats().quarantined == {"server_error": 1}
    [kept] = forwarder.quarantine.read()
    assert b'"event_id":"ev-37"' in (kept.event or b"") and "HTTP 500" in kept.detail
    forwarder.stop()
    spool.close()


def test_one_invalid_event_costs_itself_alone(live_monitor: LiveMonitor, tmp_path: Path) -> None:
    # An event of an unregistered model made the monitor refuse the whole batch, and
    # the ten valid predictions in it were dropped with it.
    spool = Spool(tmp_path / "spool", sync="none")
    for i in range(10):
        spool.append(encode("predictions", orjson.dumps(credit_event(i))))
    spool.append(encode("predictions", orjson.dumps(credit_event(10, model="unregistered"))))
    forwarder, _ = forwarder_for(spool, live_monitor.url)
    drain(forwarder)
    assert live_monitor.app.state.store.count_predictions() == 10
    assert forwarder.stats().quarantined == {"unknown_model": 1}
    forwarder.stop()
    spool.close()


@pytest.mark.parametrize("status", [401, 403, 404])
def test_configuration_errors_hold_the_spool_until_fixed(
    live_monitor: LiveMonitor, tmp_path: Path, status: int
) -> None:
    # A stale token (401), a token without the grant (403), a wrong URL (404): 50 of
    # 50 spooled events were dropped for good. They wait, and go once it is fixed.
    spool = Spool(tmp_path / "spool", sync="none")
    for i in range(50):
        spool.append(encode("predictions", orjson.dumps(credit_event(i))))
    forwarder, transport = forwarder_for(spool, live_monitor.url)
    transport.answer = SendResult("retry", detail=f"HTTP {status}", status=status)
    forwarder.start()
    deadline = time.monotonic() + 30
    while forwarder.stats().failures < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert forwarder.stats().failures >= 5
    assert live_monitor.app.state.store.count_predictions() == 0
    assert spool.stats().bytes > 0, "nothing acknowledged while the monitor refuses"
    transport.answer = None  # fixed
    while live_monitor.app.state.store.count_predictions() < 50 and time.monotonic() < deadline:
        time.sleep(0.02)
    forwarder.stop()
    assert live_monitor.app.state.store.count_predictions() == 50
    assert forwarder.stats().quarantined == {}
    spool.close()


SIDECAR = textwrap.dedent(
    """
    import sys, time, orjson
    from collectors.forward import Forwarder
    from collectors.record import encode
    from collectors.transport import HttpTransport
    from collectors.spool import Spool
    spool_dir, url, start, stop, rate = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:6])
    spool = Spool(spool_dir, sync="none")
    forwarder = Forwarder(spool, HttpTransport(url, None, 5), batch_size=200,
                          retry_initial_seconds=0.05, retry_max_seconds=0.5)
    forwarder.start()
    began = time.monotonic()
    for i in range(start, stop):
        event = {"event_id": f"ev-{i}", "model": "credit", "model_version": "v1",
                 "timestamp": 1_700_000_000 + i, "outputs": {"predicted_class": 1},
                 "features": {"income": 1.0 * i, "age": 30, "region": "north", "has_card": True}}
        spool.append(encode("predictions", orjson.dumps(event)))
        print(i, flush=True)
        time.sleep(max(0.0, began + (i - start) / rate - time.monotonic()))
    while spool.stats().bytes:
        time.sleep(0.05)
    s = forwarder.stats()
    print(f"done duplicates={s.duplicates} failures={s.failures}", flush=True)
    """
)


def start_monitor(db: Path, port: int) -> subprocess.Popen[bytes]:
    env = os.environ | {"SIDEWATCH_DATABASE_URL": f"sqlite:///{db}", "SIDEWATCH_PORT": str(port),
                        "SIDEWATCH_LOG_LEVEL": "warning"}  # fmt: skip
    process = subprocess.Popen([sys.executable, "-m", "monitor.cli", "serve"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=1).close()
            return process
        except OSError:
            time.sleep(0.1)
    raise AssertionError("the monitor did not start")


def test_nothing_is_lost_or_stored_twice_through_kill_9(tmp_path: Path) -> None:
    n, rate = 12_000, 1_500
    db, spool_dir, port = tmp_path / "monitor.db", tmp_path / "spool", free_port()
    monitor = start_monitor(db, port)
    urllib.request.urlopen(urllib.request.Request(
        f"http://127.0.0.1:{port}/v1/models/credit", method="PUT",
        data=orjson.dumps(credit_model().model_dump()),
        headers={"Content-Type": "application/json"})).close()  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def sidecar(start: int) -> subprocess.Popen[str]:
        args = [sys.executable, "-c", SIDECAR, str(spool_dir), url, str(start), str(n), str(rate)]
        return subprocess.Popen(args, stdout=subprocess.PIPE, text=True)

    side = sidecar(0)
    last = -1
    monitor_kills = sidecar_kills = 0
    summary = ""
    try:
        while True:
            assert side.stdout is not None
            line = side.stdout.readline()
            if not line or line.startswith("done"):
                summary = line
                break
            last = int(line)
            if last in (2_000, 5_000, 8_000):  # the monitor dies three times, mid-stream
                monitor.send_signal(signal.SIGKILL)
                monitor.wait()
                monitor_kills += 1
                monitor = start_monitor(db, port)
            if last == 6_500 and sidecar_kills == 0:  # and the sidecar once
                side.send_signal(signal.SIGKILL)
                side.wait()
                side.stdout.close()
                sidecar_kills += 1
                side = sidecar(last + 1)
        side.wait(60)
    finally:
        for process in (side, monitor):
            if process.poll() is None:
                process.terminate()
            process.wait(30)
        if side.stdout is not None:
            side.stdout.close()
    with sqlite3.connect(db) as conn:
        ids = [row[0] for row in conn.execute("SELECT event_id FROM predictions")]
    stored = {int(i.removeprefix("ev-")) for i in ids}
    lost = n - len(stored & set(range(n)))
    duplicates_stored = len(ids) - len(set(ids))
    print(f"\nlost={lost} duplicates_stored={duplicates_stored} monitor_kills={monitor_kills} "
          f"sidecar_kills={sidecar_kills} last sidecar run: {summary.strip()}")  # fmt: skip
    assert (monitor_kills, sidecar_kills) == (3, 1)
    assert lost == 0
    assert duplicates_stored == 0
    failures = int(summary.split("failures=")[1])
    assert failures > 0, "the monitor was down, so deliveries must have been retried"
