"""Ingest throughput: events per second from the SDK to stored rows, 20 features each.

Starts the monitor (``sidewatch serve``, SQLite) as its own process, records N events
through the SDK as fast as the caller can, and times until the monitor has stored
them all. The baseline, in the same run, is the storage ceiling: the same rows written
with plain ``sqlite3.executemany`` in batches of the SDK's size, no HTTP or validation.

Last line: ``events_per_s=N baseline_sqlite_rows_per_s=M ratio=R record_us=U``.
Target: events_per_s >= 20,000.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import orjson

from collectors import Client, ClientSettings

FEATURES = [f"f{i:02d}" for i in range(20)]


def features(rng: random.Random) -> dict[str, float]:
    return {name: rng.gauss(0, 1) for name in FEATURES}


def baseline(path: Path, n: int, batch: int) -> float:
    """Rows per second for plain executemany of the same rows into SQLite (WAL)."""
    rng = random.Random(1)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        "CREATE TABLE predictions (event_id TEXT PRIMARY KEY, model TEXT, model_version TEXT,"
        " ts REAL, received_at REAL, features JSON, outputs JSON, latency_seconds REAL,"
        " trace_id TEXT, parent_span_id TEXT, variant TEXT, segment JSON, correlation_key TEXT)"
    )
    conn.execute("CREATE INDEX ix ON predictions (model, model_version, ts)")
    rows = [
        (
            uuid.uuid4().hex,
            "bench",
            "1",
            time.time(),
            time.time(),
            orjson.dumps(features(rng)).decode(),
            '{"score":0.5}',
            0.001,
            None,
            None,
            None,
            "{}",
            None,
        )
        for _ in range(n)
    ]
    started = time.perf_counter()
    for i in range(0, n, batch):
        with conn:
            conn.executemany(
                "INSERT INTO predictions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
                rows[i : i + batch],
            )
    elapsed = time.perf_counter() - started
    conn.close()
    return n / elapsed


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def request(url: str, method: str = "GET", body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as response:
        return json.loads(response.read() or b"null")


def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("the monitor exited during start-up")
        try:
            request(url + "/readyz")
            return
        except OSError:
            time.sleep(0.2)
    sys.exit("the monitor did not start within 60 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--port", type=int, default=0, help="monitor port (default: a free one)")
    parser.add_argument(
        "--reference-rows", type=int, default=10_000, help="reference uploaded first (0: none)"
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        base_rate = baseline(Path(tmp) / "baseline.db", args.events, args.batch)
        print(f"baseline: sqlite3.executemany {base_rate:,.0f} rows/s", flush=True)

        port = args.port or free_port()
        url = f"http://127.0.0.1:{port}"
        env = os.environ | {
            "SIDEWATCH_DATABASE_URL": f"sqlite:///{tmp}/sidewatch.db",
            "SIDEWATCH_PORT": str(port),
            "SIDEWATCH_LOG_LEVEL": "warning",
        }
        cmd = os.environ.get("BENCH_MONITOR_PREFIX", "").split() + [
            sys.executable,
            "-m",
            "monitor.cli",
            "serve",
        ]
        monitor = subprocess.Popen(
            cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_ready(url, monitor)
            request(
                url + "/v1/models/bench",
                "PUT",
                {
                    "name": "bench",
                    "task": "regression",
                    "features": [{"name": f, "type": "numeric"} for f in FEATURES],
                },
            )
            rng = random.Random(2)
            if args.reference_rows:
                # With a reference, ingest also keeps each window's feature profiles
                # (histograms on the reference's bins): the path measured is the full one.
                reference = [features(rng) for _ in range(args.reference_rows)]
                req = urllib.request.Request(
                    url + "/v1/models/bench/versions/1/reference",
                    data=orjson.dumps(reference),
                    method="PUT",
                    headers={"Content-Type": "application/json"},
                )
                with urllib.request.urlopen(req, timeout=60) as response:
                    response.read()
            rows = [features(rng) for _ in range(args.events)]
            settings = ClientSettings(
                monitor_url=url,
                model="bench",
                model_version="1",  # type: ignore[arg-type]
                queue_size=args.events,
                batch_size=args.batch,
            )
            client = Client(settings)
            cpu_before = process_cpu_seconds(monitor.pid)
            started = time.perf_counter()
            for row in rows:
                client.record(row, value=0.5, latency_seconds=0.001)
            recorded = time.perf_counter() - started
            if not client.flush(600):
                sys.exit("the SDK did not drain within 600 s")
            elapsed = time.perf_counter() - started
            monitor_cpu = process_cpu_seconds(monitor.pid) - cpu_before
            stats = client.stats()
            client.close()
        finally:
            monitor.terminate()
            monitor.wait(30)
        if stats.stored != args.events:
            sys.exit(f"stored {stats.stored} of {args.events} events: {stats}")
        rate = args.events / elapsed
        record_us = recorded / args.events * 1e6
        print(
            f"sidewatch: {args.events:,} events, 20 features each, SDK -> HTTP -> SQLite rows "
            f"in {elapsed:.2f} s; record() {record_us:.1f} us per call on the caller; "
            f"monitor CPU {monitor_cpu / args.events * 1e6:.1f} us per event"
        )
        print(
            f"events_per_s={rate:.0f} baseline_sqlite_rows_per_s={base_rate:.0f} "
            f"ratio={rate / base_rate:.3f} record_us={record_us:.2f}"
        )


if __name__ == "__main__":
    main()
