"""Processes the sidecar's tests run: the sidecar itself, model servers, the monitor."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[3]
SERVERS_BIN = ROOT / ".venv-servers" / "bin"
BIN = Path(sys.executable).parent
SHIP_TIMEOUT = 60.0
"""How long a test waits for what the shipper does: it runs at nice 10 and yields to
everything else when the machine is loaded (other suites run beside these tests)."""


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


def start_on_free_port(
    command: Callable[[int], Sequence[str | Path]],
    ready: Callable[[int], str],
    *,
    timeout: float = 60,
    attempts: int = 3,
    **popen: Any,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server on a free port, and on another if it exits before it is ready.

    ``free_port()`` only finds a port free at the time: a process started beside these
    tests (other suites run at the same time) may take it before the server binds it.
    """
    for attempt in range(attempts):
        port = free_port()
        process = subprocess.Popen(command(port), **popen)
        try:
            wait_ready(ready(port), timeout, process)
            return process, port
        except AssertionError:
            stop(process)
            if process.returncode is None or attempt == attempts - 1:
                raise
    raise AssertionError("unreachable")


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A port that refuses connections: bound (so that no other process can listen on
    it while it is held) and never listened on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


class SidecarProcess:
    """``sidewatch sidecar`` as a real process on free ports."""

    def __init__(self, upstream: str | None, monitor_url: str, spool: Path, *,
                 env: Mapping[str, str] | None = None, args: Sequence[str] = (),
                 tap: bool = False) -> None:  # fmt: skip
        self._upstream = upstream
        self._monitor_url = monitor_url
        self._spool = spool
        self._args = list(args)
        self._tap = tap
        self.env = dict(os.environ) | dict(env or {})
        self.process: subprocess.Popen[bytes] | None = None
        self._pick_ports()

    def _pick_ports(self) -> None:
        self.port, self.admin_port = free_port(), free_port()
        self.tap_port = free_port() if self._tap else None
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin = f"http://127.0.0.1:{self.admin_port}"

    @property
    def command(self) -> list[str]:
        command = [str(BIN / "sidewatch"), "sidecar", "--listen", f"127.0.0.1:{self.port}",
                   "--admin-listen", f"127.0.0.1:{self.admin_port}",
                   "--monitor-url", self._monitor_url, "--spool-dir", str(self._spool),
                   *self._args]  # fmt: skip
        if self._upstream is not None:
            command += ["--upstream", self._upstream]
        if self.tap_port is not None:
            command += ["--tap-listen", f"127.0.0.1:{self.tap_port}"]
        return command

    def start(self, attempts: int = 3) -> SidecarProcess:
        """Start (or start again, on the same ports if they are still free); on new ports
        if the process exits before it is ready (another process took one of them)."""
        for attempt in range(attempts):
            self.process = subprocess.Popen(self.command, env=self.env, stderr=subprocess.DEVNULL)
            try:
                wait_ready(f"{self.admin}/readyz", 60, self.process)
                return self
            except AssertionError:
                stop(self.process)
                if self.process.returncode is None or attempt == attempts - 1:
                    raise
                self._pick_ports()
        raise AssertionError("unreachable")

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
