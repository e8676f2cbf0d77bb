"""Ship: batches of encoded events in, a delivery outcome out.

A shipper sends one JSON batch to the monitor's ingest API and says what became of it:
delivered (with the monitor's counts), worth retrying (the monitor is down, slow or
overloaded), or rejected (the monitor refused the content; retrying cannot help).
It never raises: transport errors become a ``retry`` outcome.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

import orjson

Kind = Literal["predictions", "labels"]

_RETRYABLE = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class ShipResult:
    """What became of one batch."""

    outcome: Literal["delivered", "retry", "rejected"]
    stored: int = 0
    duplicates: int = 0
    detail: str = ""


class Shipper(Protocol):
    """Sends one batch of one kind to the monitor."""

    def ship(self, kind: Kind, body: bytes, *, gzipped: bool = False) -> ShipResult:
        """Send ``body`` (a JSON batch, gzip-compressed if ``gzipped``); never raises."""
        ...

    def close(self) -> None:
        """Release connections; a later ``ship`` may open new ones."""
        ...


class HttpShipper:
    """Ships over one keep-alive HTTP/1.1 connection to the monitor's ingest API.

    Not thread-safe: one shipper belongs to one shipping thread.
    """

    def __init__(self, monitor_url: str, token: str | None, timeout_seconds: float) -> None:
        parts = urlsplit(monitor_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"monitor_url must be an http(s) URL, got {monitor_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._base = parts.path.rstrip("/")
        self._timeout = timeout_seconds
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        self._gzip_headers = self._headers | {"Content-Encoding": "gzip"}
        self._conn: http.client.HTTPConnection | None = None

    def ship(self, kind: Kind, body: bytes, *, gzipped: bool = False) -> ShipResult:
        """POST ``body`` to ``/v1/ingest/{kind}``."""
        try:
            status, payload = self._post(f"{self._base}/v1/ingest/{kind}", body, gzipped)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return ShipResult("retry", detail=f"monitor unreachable: {exc.__class__.__name__}")
        if 200 <= status < 300:
            counts = _decode_counts(payload)
            return ShipResult("delivered", stored=counts[0], duplicates=counts[1])
        detail = f"HTTP {status}: {payload[:500].decode('utf-8', 'replace')}"
        if status in _RETRYABLE:
            return ShipResult("retry", detail=detail)
        return ShipResult("rejected", detail=detail)

    def close(self) -> None:
        """Drop the connection; the next ``ship`` opens a new one."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _post(self, path: str, body: bytes, gzipped: bool) -> tuple[int, bytes]:
        if self._conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            self._conn = cls(self._host, self._port, timeout=self._timeout)
            self._conn.connect()
            if self._conn.sock is not None:
                self._conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        headers = self._gzip_headers if gzipped else self._headers
        self._conn.request("POST", path, body=body, headers=headers)
        response = self._conn.getresponse()
        payload = response.read()
        if response.will_close:
            self.close()
        return response.status, payload


def _decode_counts(payload: bytes) -> tuple[int, int]:
    try:
        answer = orjson.loads(payload)
        return int(answer.get("stored", 0)), int(answer.get("duplicates", 0))
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return 0, 0
