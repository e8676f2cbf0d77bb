"""The README's first command: the demo runs, drifts, and /metrics shows it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from monitor.demo.data import DRIFTED, FEATURES, MODEL_NAME
from tests.conftest import free_port

THRESHOLD = 0.2  # the monitor's default PSI threshold


def scrape(url: str) -> dict[str, list]:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


def test_demo_drifts_the_drifted_features_only_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = [sys.executable, "-m", "monitor.cli", "demo", "--port", str(port),
            "--workdir", str(tmp_path / "demo"), "--window-seconds", "6", "--rate", "50",
            "--drift-after", "20", "--label-delay", "4"]  # fmt: skip
    demo = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output: list[str] = []
    drift_at: list[float] = []

    def read() -> None:
        assert demo.stdout is not None
        for line in demo.stdout:
            output.append(line)
            if "drift injected" in line:
                drift_at.append(time.time())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    windows: dict[float, dict[str, float]] = {}  # window start -> feature -> PSI
    coverage = 0.0
    accuracy: list[float] = []
    try:
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            time.sleep(1)
            assert demo.poll() is None, "".join(output)
            try:
                families = scrape(url)
            except OSError:
                continue
            starts = families.get("sidewatch_window_start_timestamp_seconds", [])
            scores = families.get("sidewatch_feature_drift_score", [])
            if not starts or not scores:
                continue
            start = starts[0].value
            windows[start] = {s.labels["feature"]: s.value for s in scores}
            for s in families.get("sidewatch_window_label_coverage_ratio", []):
                coverage = max(coverage, s.value)
            accuracy += [s.value for s in families.get("sidewatch_window_accuracy_ratio", [])]
            after = [w for w in windows if drift_at and w >= drift_at[0]]
            if len(after) >= 2 and coverage > 0:
                break
        assert "Sidewatch demo is running" in "".join(output)
        assert f"{url}/metrics" in "".join(output) and f"{url}/docs" in "".join(output)
        assert drift_at, "the demo never injected drift:\n" + "".join(output)
        before = {w: psi for w, psi in windows.items() if w + 6 <= drift_at[0]}
        after = {w: psi for w, psi in windows.items() if w >= drift_at[0]}
        assert before and after, (windows, drift_at)
        for psi in before.values():
            assert set(psi) == set(FEATURES)
            assert max(psi.values()) < THRESHOLD, psi
        for psi in after.values():
            assert min(psi[f] for f in DRIFTED) > THRESHOLD, psi
            assert max(v for f, v in psi.items() if f not in DRIFTED) < THRESHOLD, psi
        assert 0 < coverage <= 1, "late labels reached the monitor"
        assert accuracy and all(0.5 < a <= 1 for a in accuracy), accuracy
        # The traffic went through the sidecar, which captured it.
        match = re.search(r"sidecar metrics\s+(\S+)", "".join(output))
        assert match is not None, "".join(output)
        captured = scrape(match.group(1).removesuffix("/metrics"))
        assert captured["sidewatch_sidecar_events_captured"][0].value > 100
        families = scrape(url)
        info = families["sidewatch_model_info"]
        assert {s.labels["model"] for s in info} == {MODEL_NAME}
    finally:
        demo.send_signal(signal.SIGINT)  # Ctrl-C
        try:
            code = demo.wait(60)
        finally:
            demo.kill()
        reader.join(5)
        assert demo.stdout is not None
        demo.stdout.close()
    assert code == 0, "".join(output)
    assert "labels; the monitor stored" in output[-1], output[-3:]
    # The children are gone: nothing answers on the monitor's port any more.
    try:
        urllib.request.urlopen(url + "/livez", timeout=2)
        raise AssertionError("the monitor still runs after the demo stopped")
    except OSError:
        pass
