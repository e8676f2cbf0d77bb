"""Sustained load: the monitor's memory stays flat and every event sent is stored.

Starts the monitor (``sidewatch serve``, SQLite, default settings: 300 s windows
scored every 15 s, so the open window grows through the run and is rescored on every
pass) as its own process, registers a binary model with 20 numeric features and a
reference, then drives ingest from a second process at a steady offered rate for the
whole duration: batches of plain HTTP posts, each retried until the monitor answers
200. The monitor's resident memory (``VmRSS``) is read once a second; ``rss_start_mb``
is its value when the warm-up ends, ``rss_end_mb`` at the end of the load. At the end
the predictions stored are counted in the SQLite file itself.

Last line: ``events_per_s=N rss_start_mb=S rss_end_mb=E rss_max_mb=M growth=G
lost=L``; the run fails (exit 1) when ``lost`` is not 0 or ``rss_end_mb`` exceeds
``rss_start_mb`` by more than 10%.

Duration: ``--seconds`` or ``SOAK_SECONDS`` (default 300), warm-up ``--warmup`` or
``SOAK_WARMUP_SECONDS`` (default 60), offered rate ``--rate`` or ``SOAK_RATE``
(events per second, default 2,000).
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
import threading
import time
from pathlib import Path

import httpx
import orjson
import pandas as pd

FEATURES = [f"f{i:02d}" for i in range(20)]
MODEL = "soak"
GROWTH_LIMIT = 0.10
"""Most RSS growth allowed from the end of the warm-up to the end of the load."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def wait_ready(client: httpx.Client, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit("the monitor exited during start-up")
        try:
            if client.get("/readyz").status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    sys.exit("the monitor did not start within 60 s")


def setup(client: httpx.Client) -> None:
    """Register the model and upload a reference of 5,000 rows."""
    model = {
        "name": MODEL,
        "task": "binary",
        "positive_class": 1,
        "features": [{"name": f, "type": "numeric"} for f in FEATURES],
    }
    response = client.put(f"/v1/models/{MODEL}", json=model)
    response.raise_for_status()
    rng = random.Random(1)
    frame = pd.DataFrame({f: [rng.gauss(0, 1) for _ in range(5_000)] for f in FEATURES})
    frame["prediction"] = [rng.randint(0, 1) for _ in range(5_000)]
    frame["score"] = [rng.random() for _ in range(5_000)]
    response = client.put(
        f"/v1/models/{MODEL}/versions/1/reference",
        content=frame.to_csv(index=False).encode(),
        headers={"Content-Type": "text/csv"},
        timeout=120,
    )
    response.raise_for_status()


def load(url: str, seconds: float, rate: float, batch: int) -> None:
    """The load process: post batches at ``rate`` events/s for ``seconds``; print the
    counts as one JSON line."""
    rng = random.Random(2)
    sent = retries = 0
    started = time.monotonic()
    with httpx.Client(base_url=url, timeout=60) as client:
        while (elapsed := time.monotonic() - started) < seconds:
            ahead = sent / rate - elapsed
            if ahead > 0:
                time.sleep(ahead)
            now = time.time()
            events = [
                {
                    "event_id": f"soak-{sent + i}",
                    "model": MODEL,
                    "model_version": "1",
                    "timestamp": now,
                    "features": {f: rng.gauss(0, 1) for f in FEATURES},
                    "outputs": {"predicted_class": rng.randint(0, 1), "score": rng.random()},
                    "latency_seconds": rng.lognormvariate(-4, 0.5),
                }
                for i in range(batch)
            ]
            body = orjson.dumps({"events": events})
            while True:
                try:
                    response = client.post(
                        "/v1/ingest/predictions",
                        content=body,
                        headers={"Content-Type": "application/json"},
                    )
                    if response.status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                retries += 1
                time.sleep(0.5)
            sent += batch
    elapsed = time.monotonic() - started
    print(json.dumps({"sent": sent, "seconds": elapsed, "retries": retries}), flush=True)


def stored(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return int(
            conn.execute("SELECT count(*) FROM predictions WHERE model = ?", (MODEL,)).fetchone()[0]
        )
    finally:
        conn.close()


def soak(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "sidewatch.db"
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        env = os.environ | {
            "SIDEWATCH_DATABASE_URL": f"sqlite:///{db}",
            "SIDEWATCH_PORT": str(port),
            "SIDEWATCH_LOG_LEVEL": "warning",
        }
        monitor = subprocess.Popen(
            [sys.executable, "-m", "monitor.cli", "serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            with httpx.Client(base_url=url, timeout=60) as client:
                wait_ready(client, monitor)
                setup(client)
            samples: list[tuple[float, float]] = []
            done = threading.Event()

            def watch() -> None:
                t0 = time.monotonic()
                while not done.wait(1.0):
                    samples.append((time.monotonic() - t0, rss_mb(monitor.pid)))

            watcher = threading.Thread(target=watch, daemon=True)
            loader = subprocess.Popen(
                [
                    sys.executable,
                    __file__,
                    "--load",
                    url,
                    "--seconds",
                    str(args.seconds),
                    "--rate",
                    str(args.rate),
                    "--batch",
                    str(args.batch),
                ],
                stdout=subprocess.PIPE,
            )
            watcher.start()
            rss_start = None
            warm_end = time.monotonic() + args.warmup
            while loader.poll() is None:
                time.sleep(0.5)
                if rss_start is None and time.monotonic() >= warm_end:
                    rss_start = rss_mb(monitor.pid)
                    print(f"warm-up over: rss {rss_start:.0f} MiB", flush=True)
                if monitor.poll() is not None:
                    loader.kill()
                    sys.exit("the monitor exited under load")
            rss_end = rss_mb(monitor.pid)
            done.set()
            watcher.join()
            assert loader.stdout is not None
            counts = json.loads(loader.stdout.read().decode().strip().splitlines()[-1])
            if loader.returncode != 0:
                sys.exit(f"the load process failed ({loader.returncode})")
            if rss_start is None:
                sys.exit("the load ended before the warm-up: raise --seconds or lower --warmup")
            found = stored(db)
        finally:
            monitor.terminate()
            _, err = monitor.communicate(timeout=30)
        for t, rss in samples[:: max(1, len(samples) // 20)]:
            print(f"t={t:5.0f}s rss={rss:6.0f} MiB", flush=True)
        if err.strip():
            print(err.decode(errors="replace")[-2000:], file=sys.stderr)
    sent = counts["sent"]
    lost = sent - found
    growth = rss_end / rss_start - 1
    rss_max = max(rss for _, rss in samples) if samples else rss_end
    print(
        f"sent {sent:,} events in {counts['seconds']:.0f} s ({counts['retries']} retried "
        f"posts), stored {found:,}; offered {args.rate:,.0f} events/s"
    )
    print(
        f"events_per_s={sent / counts['seconds']:.0f} rss_start_mb={rss_start:.0f} "
        f"rss_end_mb={rss_end:.0f} rss_max_mb={rss_max:.0f} growth={growth:.3f} lost={lost}"
    )
    return 0 if lost == 0 and growth <= GROWTH_LIMIT else 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=float(os.environ.get("SOAK_SECONDS", 300)))
    parser.add_argument(
        "--warmup", type=float, default=float(os.environ.get("SOAK_WARMUP_SECONDS", 60))
    )
    parser.add_argument("--rate", type=float, default=float(os.environ.get("SOAK_RATE", 2_000)))
    parser.add_argument("--batch", type=int, default=200, help="events per post")
    parser.add_argument("--load", metavar="URL", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load:
        load(args.load, args.seconds, args.rate, args.batch)
        return
    sys.exit(soak(args))


if __name__ == "__main__":
    main()
