"""The demo: a sample model, the monitor, and traffic that drifts, with late labels.

``sidewatch demo`` starts the monitor (SQLite in ``var/demo``), a sample model server
and the sidecar in front of it as child processes, registers the model with its
training data as the reference, then sends traffic to the model through the sidecar,
which captures every prediction. After ``drift_after`` seconds three features shift;
the truth for most predictions arrives ``label_delay`` seconds later, through the SDK,
joined by the request id the caller sent (``X-Request-Id``). It prints where to look and a line
per scoring window, and stops cleanly on Ctrl-C or after ``duration`` seconds.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from collectors import Client, ClientSettings
from monitor.demo.data import DRIFTED, FEATURES, MODEL_NAME, MODEL_VERSION, load, model_description
from monitor.errors import CliError

_WINDOWS = f"/v1/models/{MODEL_NAME}/versions/{MODEL_VERSION}/windows"

LABELLED_SHARE = 0.8
"""Share of predictions whose truth eventually arrives."""


def run(
    *,
    duration: float | None = None,
    port: int = 8700,
    workdir: str = "var/demo",
    drift_after: float = 60.0,
    window_seconds: int = 15,
    rate: float = 20.0,
    label_delay: float = 20.0,
) -> None:
    """Run the demo until Ctrl-C or for ``duration`` seconds.

    Raises:
        CliError: A port is taken or a child process does not start.
    """
    # Ctrl-C and SIGTERM both stop the demo cleanly (children included), even when the
    # demo was started with SIGINT ignored (as a shell's background job is).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    work = Path(workdir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    monitor_url = f"http://127.0.0.1:{port}"
    model_port, sidecar_port, sidecar_admin = _free_port(), _free_port(), _free_port()
    env = os.environ | {
        "SIDEWATCH_DATABASE_URL": f"sqlite:///{work.resolve() / 'sidewatch.db'}",
        "SIDEWATCH_PORT": str(port),
        "SIDEWATCH_HOST": "127.0.0.1",
        "SIDEWATCH_WINDOW_SECONDS": str(window_seconds),
        "SIDEWATCH_SCORE_INTERVAL_SECONDS": "2",
        # A window that the demo only partly filled is not scored: too few events.
        "SIDEWATCH_MIN_WINDOW_EVENTS": str(max(30, int(0.6 * rate * window_seconds))),
        # PSI for every feature: the demo shows one distance rising past one threshold
        # (by default a small reference would get KS p-values, drift when small).
        "SIDEWATCH_DRIFT_TEST": "psi",
    }
    _check_port_free(port)
    with (
        _child([sys.executable, "-m", "monitor.cli", "serve"], env, work / "monitor.log") as mon,
        _child(
            [sys.executable, "-m", "monitor.demo.model_server", "--port", str(model_port)],
            env,
            work / "model.log",
        ) as model,
        _child(
            [
                sys.executable,
                "-m",
                "monitor.cli",
                "sidecar",
                "--upstream",
                f"http://127.0.0.1:{model_port}",
                "--listen",
                f"127.0.0.1:{sidecar_port}",
                "--admin-listen",
                f"127.0.0.1:{sidecar_admin}",
                "--monitor-url",
                monitor_url,
                "--model",
                MODEL_NAME,
                "--version",
                MODEL_VERSION,
                "--spool-dir",
                str(work / "spool"),
            ],
            env,
            work / "sidecar.log",
        ) as sidecar,  # fmt: skip
    ):
        _wait_ready(monitor_url + "/readyz", mon, work / "monitor.log")
        _wait_ready(f"http://127.0.0.1:{model_port}/ping", model, work / "model.log")
        _wait_ready(f"http://127.0.0.1:{sidecar_admin}/readyz", sidecar, work / "sidecar.log")
        data = load()
        _setup_monitor(monitor_url, _with_predictions(data.train, model_port))
        print(
            "\nSidewatch demo is running.\n"
            f"  monitor API docs  {monitor_url}/docs\n"
            f"  metrics           {monitor_url}/metrics   (sidewatch_feature_drift_score, ...)\n"
            f"  window results    {monitor_url}{_WINDOWS}\n"
            f"  sample model      http://127.0.0.1:{model_port}/invocations (MLflow format)\n"
            f"  sidecar           http://127.0.0.1:{sidecar_port}/invocations (in front of it)\n"
            f"  sidecar metrics   http://127.0.0.1:{sidecar_admin}/metrics\n"
            f"  logs              {work}/\n"
            f"Traffic: {rate:g} predictions/s; {LABELLED_SHARE:.0%} of labels arrive "
            f"{label_delay:g} s late; drift in {', '.join(DRIFTED)} after {drift_after:g} s.\n"
            f"Windows are {window_seconds} s long. Press Ctrl-C to stop.\n",
            flush=True,
        )
        settings = ClientSettings(
            monitor_url=monitor_url,
            model=MODEL_NAME,
            model_version=MODEL_VERSION,
            flush_interval_seconds=0.5,
            quarantine_dir=work / "sdk-quarantine",
        )
        with Client(settings) as client:
            try:
                _traffic(
                    client,
                    data.population,
                    sidecar_port,
                    monitor_url,
                    duration,
                    drift_after,
                    window_seconds,
                    rate,
                    label_delay,
                )
            except KeyboardInterrupt:
                print("\nStopping...", flush=True)
            client.flush(10)
            stats = client.stats()
        print(
            f"Sent {stats.recorded} labels; the monitor stored {stats.stored}, "
            f"dropped {stats.dropped_queue_full}, quarantined "
            f"{sum(stats.quarantined.values())} ({client.settings.quarantine_dir}). "
            f"The database stays in {work}/sidewatch.db.",
            flush=True,
        )


def _traffic(
    client: Client,
    population: Any,
    sidecar_port: int,
    monitor_url: str,
    duration: float | None,
    drift_after: float,
    window_seconds: int,
    rate: float,
    label_delay: float,
) -> None:
    rng = np.random.default_rng(7)
    features = population[list(FEATURES)].to_numpy()
    truth = population["target"].to_numpy()
    spread = features.std(axis=0)
    shift = np.array([1.5 * spread[i] if f in DRIFTED else 0.0 for i, f in enumerate(FEATURES)])
    conn = http.client.HTTPConnection("127.0.0.1", sidecar_port, timeout=10)
    labels: deque[tuple[float, str, int]] = deque()
    started = time.monotonic()
    next_report = started + window_seconds
    drift_announced = False
    sent = 0
    while duration is None or time.monotonic() - started < duration:
        now = time.monotonic()
        drifting = now - started >= drift_after
        if drifting and not drift_announced:
            print(f"[{now - started:5.0f}s] drift injected into {', '.join(DRIFTED)}", flush=True)
            drift_announced = True
        i = int(rng.integers(len(features)))
        row = features[i] * rng.normal(1.0, 0.02, len(FEATURES)) + (shift if drifting else 0.0)
        request_id = f"demo-{sent}"
        _predict(conn, row, request_id)
        sent += 1
        if rng.random() < LABELLED_SHARE:
            labels.append((now + label_delay, request_id, int(truth[i])))
        while labels and labels[0][0] <= now:
            _, key, value = labels.popleft()
            client.record_label(value, correlation_key=key)
        if now >= next_report:
            _report(monitor_url, now - started, sent)
            next_report += window_seconds
        time.sleep(max(0.0, started + sent / rate - time.monotonic()))


def _predict(conn: http.client.HTTPConnection, row: np.ndarray, request_id: str) -> float:
    body = json.dumps({"dataframe_split": {"columns": list(FEATURES), "data": [row.tolist()]}})
    headers = {"Content-Type": "application/json", "X-Request-Id": request_id}
    conn.request("POST", "/invocations", body, headers)
    response = conn.getresponse()
    payload = json.loads(response.read())
    if response.status != 200:
        raise CliError(f"the sample model answered {response.status}: {payload}")
    return float(payload["predictions"][0][1])


def _report(monitor_url: str, elapsed: float, sent: int) -> None:
    windows = _get_json(f"{monitor_url}{_WINDOWS}?limit=5") or []
    closed = [w for w in windows if w["window_end"] <= time.time() and w["drift"]]
    if not closed:
        print(
            f"[{elapsed:5.0f}s] sent {sent} predictions; waiting for the first window", flush=True
        )
        return
    w = closed[0]
    top = sorted(w["drift"], key=lambda d: -d["value"])[:3]
    drift = ", ".join(
        f"{d['feature']} {d['value']:.2f}{' DRIFT' if d['drifted'] else ''}" for d in top
    )
    # Labels come late: accuracy is known for an older window first.
    labelled = next((x for x in closed if x["accuracy"] is not None), None)
    accuracy = (
        f"accuracy {labelled['accuracy']:.2f} on {labelled['labelled']} labels "
        f"{_ended_ago(labelled)}"
        if labelled
        else "no labels yet"
    )
    outputs = [d for d in w.get("prediction_drift") or [] if d["drifted"]]
    together = w.get("multivariate") or {}
    extra = "".join(
        [
            f"; outputs drifted ({', '.join(d['output'] for d in outputs)})" if outputs else "",
            "; inputs together drifted" if together.get("drifted") else "",
        ]
    )
    print(
        f"[{elapsed:5.0f}s] sent {sent}; last window: {w['predictions']} predictions, "
        f"top PSI {drift}{extra}; {accuracy}",
        flush=True,
    )


def _ended_ago(window: dict[str, Any]) -> str:
    """How long ago a window ended, in words."""
    return f"(window ended {time.time() - window['window_end']:.0f} s ago)"


def _with_predictions(train: Any, model_port: int) -> Any:
    """The training split with what the model serves for it (asked directly, not through
    the sidecar): the reference of prediction drift, as ``prediction`` and ``score``."""
    conn = http.client.HTTPConnection("127.0.0.1", model_port, timeout=30)
    body = json.dumps(
        {
            "dataframe_split": {
                "columns": list(FEATURES),
                "data": train[list(FEATURES)].values.tolist(),
            }
        }
    )
    conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
    response = conn.getresponse()
    payload = json.loads(response.read())
    conn.close()
    if response.status != 200:
        raise CliError(f"the sample model answered {response.status}: {payload}")
    score = np.array([row[1] for row in payload["predictions"]])
    return train.assign(score=score, prediction=(score >= 0.5).astype(int))


def _setup_monitor(monitor_url: str, train: Any) -> None:
    _send(
        monitor_url,
        "PUT",
        f"/v1/models/{MODEL_NAME}",
        json.dumps(model_description()).encode(),
        "application/json",
    )
    _send(
        monitor_url,
        "PUT",
        f"/v1/models/{MODEL_NAME}/versions/{MODEL_VERSION}/reference",
        train.to_csv(index=False).encode(),
        "text/csv",
    )


def _send(base: str, method: str, path: str, body: bytes, content_type: str) -> None:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request(method, path, body, {"Content-Type": content_type})
    response = conn.getresponse()
    text = response.read().decode()
    conn.close()
    if response.status >= 300:
        raise CliError(f"{method} {path} answered {response.status}: {text}")


def _get_json(url: str) -> Any:
    host, rest = url.removeprefix("http://").split("/", 1)
    name, port = host.split(":")
    conn = http.client.HTTPConnection(name, int(port), timeout=5)
    try:
        conn.request("GET", "/" + rest)
        response = conn.getresponse()
        return json.loads(response.read()) if response.status == 200 else None
    except (OSError, ValueError):
        return None
    finally:
        conn.close()


@contextmanager
def _child(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        # Its own process group: Ctrl-C reaches the demo, which then stops the children.
        process = subprocess.Popen(
            args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            yield process
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise CliError(f"{' '.join(map(str, process.args))} exited; see {log}")  # type: ignore[arg-type]
        if _get_json(url) is not None:
            return
        time.sleep(0.2)
    raise CliError(f"{url} did not become ready in {timeout:g} s; see {log}")


def _check_port_free(port: int) -> None:
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            raise CliError(f"port {port} is taken; stop what uses it or pass --port", exit_code=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
