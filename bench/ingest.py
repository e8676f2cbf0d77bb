"""Ingest throughput: events per second from the SDK to stored rows, 20 features each.

Starts the monitor (``sidewatch serve``, SQLite) as its own process, records N events
through the SDK as fast as the caller can, and times until the monitor has stored
them all. The baseline, in the same run, is the storage ceiling: the same rows written
with plain ``sqlite3.executemany`` in batches of the SDK's size, no HTTP or validation.

An A/B of the feature profiles kept at ingest, in the same run: arm ``on`` is the
monitor as it ships (a reference uploaded first, so each batch's features are binned
on its bins and merged into the window's stored profiles); arm ``off`` is the same
monitor with profiles switched off (its ingestor built with no profile window), the
same reference uploaded. Arms alternate, each on a fresh database; each run prints
its rate, the monitor's CPU per event and the load average around it.

Last line: ``events_per_s=N no_profiles_events_per_s=M profile_overhead=O
profile_cpu_us=P baseline_sqlite_rows_per_s=B ratio=R monitor_cpu_us=C record_us=U
load=L``: medians over runs (``events_per_s``: profiles on), ``profile_overhead`` is
``1 - N / M``, ``profile_cpu_us`` the monitor's CPU per event with profiles minus
without (steadier than the rates on a shared machine), ``load`` the mean 1-minute load
average around the runs. Target: events_per_s >= 20,000.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
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


# The monitor with profiles off: its ingestor is built without a profile window.
_NO_PROFILES = """
import sys
import monitor.api.ingest as ingest
build = ingest.Ingestor.__init__
def without_profiles(self, *args, **kwargs):
    build(self, *args[:3], **(kwargs | {"window_seconds": None}))
ingest.Ingestor.__init__ = without_profiles
from monitor.cli import main
sys.exit(main(["serve"]))
"""


@dataclass(frozen=True)
class Run:
    arm: str
    events_per_s: float
    monitor_cpu_us: float
    record_us: float
    load: tuple[float, float]


def run_arm(arm: str, args: argparse.Namespace, tmp: Path) -> Run:
    """One run on a fresh database: the monitor as it ships (``on``) or without profiles."""
    db = tmp / f"sidewatch-{arm}-{time.monotonic_ns()}.db"
    port = args.port or free_port()
    url = f"http://127.0.0.1:{port}"
    env = os.environ | {
        "SIDEWATCH_DATABASE_URL": f"sqlite:///{db}",
        "SIDEWATCH_PORT": str(port),
        "SIDEWATCH_LOG_LEVEL": "warning",
    }
    serve = ["-m", "monitor.cli", "serve"] if arm == "on" else ["-c", _NO_PROFILES]
    cmd = os.environ.get("BENCH_MONITOR_PREFIX", "").split() + [sys.executable, *serve]
    monitor = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
            # With a reference, ingest bins each feature on the reference's bins: the
            # path measured is the full one.
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
        load_before = os.getloadavg()[0]
        cpu_before = process_cpu_seconds(monitor.pid)
        started = time.perf_counter()
        for row in rows:
            client.record(row, value=0.5, latency_seconds=0.001)
        recorded = time.perf_counter() - started
        if not client.flush(600):
            sys.exit("the SDK did not drain within 600 s")
        elapsed = time.perf_counter() - started
        monitor_cpu = process_cpu_seconds(monitor.pid) - cpu_before
        load_after = os.getloadavg()[0]
        stats = client.stats()
        client.close()
    finally:
        monitor.terminate()
        monitor.wait(30)
    if stats.stored != args.events:
        sys.exit(f"stored {stats.stored} of {args.events} events: {stats}")
    return Run(
        arm,
        args.events / elapsed,
        monitor_cpu / args.events * 1e6,
        recorded / args.events * 1e6,
        (load_before, load_after),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--port", type=int, default=0, help="monitor port (default: a free one)")
    parser.add_argument(
        "--reference-rows", type=int, default=10_000, help="reference uploaded first (0: none)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs of each arm, alternating")
    parser.add_argument(
        "--arms", default="on,off", help="on: profiles at ingest (as shipped); off: none"
    )
    args = parser.parse_args()
    arms = args.arms.split(",")
    if not set(arms) <= {"on", "off"}:
        sys.exit("--arms takes on, off or both")

    with tempfile.TemporaryDirectory() as tmp:
        base_rate = baseline(Path(tmp) / "baseline.db", args.events, args.batch)
        print(f"baseline: sqlite3.executemany {base_rate:,.0f} rows/s", flush=True)
        runs: list[Run] = []
        for i in range(args.runs):
            for arm in arms if i % 2 == 0 else arms[::-1]:
                run = run_arm(arm, args, Path(tmp))
                runs.append(run)
                print(
                    f"run {i + 1} profiles {arm}: {run.events_per_s:,.0f} events/s, monitor CPU "
                    f"{run.monitor_cpu_us:.1f} us/event, record() {run.record_us:.1f} us, "
                    f"load {run.load[0]:.2f} -> {run.load[1]:.2f}",
                    flush=True,
                )

    def median(arm: str, field: str) -> float:
        return float(statistics.median(getattr(r, field) for r in runs if r.arm == arm))

    first = arms[0]
    rate = median("on", "events_per_s") if "on" in arms else math.nan
    off = median("off", "events_per_s") if "off" in arms else math.nan
    cpu = (
        median("on", "monitor_cpu_us") - median("off", "monitor_cpu_us")
        if len(arms) > 1
        else math.nan
    )
    load = statistics.mean(x for r in runs for x in r.load)
    print(
        f"sidewatch: {args.events:,} events, 20 features each, SDK -> HTTP -> SQLite rows, "
        f"{args.runs} run(s) per arm; medians: profiles on {rate:,.0f} events/s, off "
        f"{off:,.0f} events/s; monitor CPU per event on minus off {cpu:.1f} us"
    )
    print(
        f"events_per_s={rate:.0f} no_profiles_events_per_s={off:.0f} "
        f"profile_overhead={1 - rate / off:.3f} profile_cpu_us={cpu:.2f} "
        f"baseline_sqlite_rows_per_s={base_rate:.0f} ratio={rate / base_rate:.3f} "
        f"monitor_cpu_us={median(first, 'monitor_cpu_us'):.2f} "
        f"record_us={median(first, 'record_us'):.2f} load={load:.2f}"
    )


if __name__ == "__main__":
    main()
