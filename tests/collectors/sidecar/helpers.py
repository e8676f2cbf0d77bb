"""Processes the sidecar's tests run: the sidecar itself, model servers, the monitor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]
SERVERS_BIN = ROOT / ".venv-servers" / "bin"
BIN = Path(sys.executable).parent


def wait_ready(url: str, timeout: float = 120, process: subprocess.Popen[bytes] | None = None
               ) -> None:  # fmt: skip
    """Wait until ``url`` answers 2xx (or any HTTP answer for model servers' roots)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"process exited with {process.returncode} before {url}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
            return
        except urllib.error.HTTPError as exc:
            if exc.code < 500 and not url.endswith("readyz"):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not become ready in {timeout} s")


def stop(process: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM, then SIGKILL after ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class SidecarProcess:
    """``sidewatch sidecar`` as a real process on free ports."""

    def __init__(self, upstream: str | None, monitor_url: str, spool: Path, *,
                 env: Mapping[str, str] | None = None, args: Sequence[str] = (),
                 tap: bool = False) -> None:  # fmt: skip
        self.port, self.admin_port = free_port(), free_port()
        self.tap_port = free_port() if tap else None
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        command = [str(BIN / "sidewatch"), "sidecar", "--listen", f"127.0.0.1:{self.port}",
                   "--admin-listen", f"127.0.0.1:{self.admin_port}",
                   "--monitor-url", monitor_url, "--spool-dir", str(spool), *args]  # fmt: skip
        if upstream is not None:
            command += ["--upstream", upstream]
        if self.tap_port is not None:
            command += ["--tap-listen", f"127.0.0.1:{self.tap_port}"]
        self.command = command
        self.env = dict(os.environ) | dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> SidecarProcess:
        self.process = subprocess.Popen(self.command, env=self.env, stderr=subprocess.DEVNULL)
        wait_ready(f"{self.admin}/readyz", 60, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def rss_bytes(self) -> int:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of ``/metrics``: (name, sorted labels) → value."""
        text = urllib.request.urlopen(f"{self.admin}/metrics", timeout=5).read().decode()
        samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return samples

    def metric(self, name: str, **labels: str) -> float:
        return self.metrics().get((name, tuple(sorted(labels.items()))), 0.0)
