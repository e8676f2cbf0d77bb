"""Headless Chromium (Debian's ``chromium``) driven over the DevTools protocol.

No Playwright and no downloaded browser: the system's Chromium is started with a
remote-debugging port and spoken to over a WebSocket (the ``websockets`` package).
A :class:`Page` records everything a test needs to judge a page: console messages,
uncaught exceptions, browser log entries and every network request.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM = "/usr/bin/chromium"


@dataclass
class Page:
    """One browser tab and what it reported."""

    ws: ClientConnection
    console: list[dict[str, Any]] = field(default_factory=list)
    """``{"level", "text"}`` of every console call (log, warning, error, ...)."""
    exceptions: list[str] = field(default_factory=list)
    """Uncaught JavaScript exceptions, as text."""
    log: list[dict[str, Any]] = field(default_factory=list)
    """Browser log entries (failed loads, violations): ``{"level", "source", "text"}``."""
    requests: list[str] = field(default_factory=list)
    """URL of every request the page made."""
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _loaded: bool = False

    def call(self, method: str, timeout: float = 60, **params: Any) -> dict[str, Any]:
        """Send a DevTools command and return its result (events are recorded meanwhile)."""
        mid = next(self._ids)
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            if message.get("id") == mid:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            self._event(message)

    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(
                str(a.get("value", a.get("description", a.get("type")))) for a in params["args"]
            )
            self.console.append({"level": params["type"], "text": text})
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            description = details.get("exception", {}).get("description") or details.get("text")
            self.exceptions.append(str(description))
        elif method == "Log.entryAdded":
            entry = params["entry"]
            self.log.append(
                {
                    "level": entry["level"],
                    "source": entry["source"],
                    "text": f"{entry['text']} {entry.get('url', '')}".strip(),
                }
            )
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Page.loadEventFired":
            self._loaded = True

    def open(self, url: str, timeout: float = 120) -> None:
        """Navigate and wait for the load event."""
        for domain in ("Runtime", "Log", "Network", "Page"):
            self.call(f"{domain}.enable")
        self._loaded = False
        self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout
        while not self._loaded:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{url} did not finish loading in {timeout} s")
            self._event(json.loads(self.ws.recv(timeout=remaining)))

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page."""
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30) -> Any:
        """Poll a JavaScript expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if value or time.monotonic() > deadline:
                return value
            time.sleep(0.2)

    def screenshot(self, path: Path) -> Path:
        """Save a PNG of the whole page (not just the viewport)."""
        metrics = self.call("Page.getLayoutMetrics")
        size = metrics["cssContentSize"]
        data = self.call(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={
                "x": 0,
                "y": 0,
                "width": size["width"],
                "height": min(size["height"], 16_000),
                "scale": 1,
            },
        )["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def errors(self) -> list[str]:
        """Everything that counts as an error: exceptions, console errors, log errors."""
        return (
            [f"exception: {e}" for e in self.exceptions]
            + [
                f"console.{c['level']}: {c['text']}"
                for c in self.console
                if c["level"] in ("error", "assert")
            ]
            + [f"log ({e['source']}): {e['text']}" for e in self.log if e["level"] == "error"]
        )


class Chromium:
    """A headless Chromium process with one tab; a context manager.

    Args:
        profile: An empty directory for the browser's profile.
    """

    def __init__(self, profile: Path) -> None:
        if shutil.which(CHROMIUM) is None:
            raise RuntimeError(
                f"{CHROMIUM} is missing: `make tools` installs Debian's chromium package"
            )
        self.profile = profile
        self.process: subprocess.Popen[bytes] | None = None
        self.page: Page | None = None
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> Page:
        self.process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",  # the tests run as root in a container
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--no-default-browser-check",
                "--window-size=1400,1000",
                "--remote-debugging-port=0",
                "--remote-allow-origins=*",
                f"--user-data-dir={self.profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError("chromium did not open its DevTools port")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            targets = json.loads(r.read())
        [tab] = [t for t in targets if t["type"] == "page"]
        ws = self._stack.enter_context(
            connect(tab["webSocketDebuggerUrl"], max_size=256 * 1024 * 1024, open_timeout=30)
        )
        self.page = Page(ws)
        return self.page

    def __exit__(self, *_exc: object) -> None:
        self._stack.close()
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(20)
