"""Transport: one batch of encoded events in, what the monitor made of it out.

A :class:`Transport` sends one JSON batch to the monitor's ingest API and says what
became of it (a :class:`SendResult`); :class:`HttpTransport` is the real one, and a
test brings its own (any object with ``send`` and ``close``). The outcomes:

- ``delivered``: the monitor answered for every event: stored, a duplicate, or
  rejected by index with its reason (partial acceptance);
- ``retry``: the monitor is unreachable, down, overloaded, or not accepting this
  collector right now (a stale token, a wrong address): a state that gets fixed, so
  the same batch is sent again later;
- ``refused``: the monitor refused the request as a whole for its content (too large,
  not a batch): a smaller batch may pass;
- ``failed``: the monitor broke on it (HTTP 500): worth a few more tries, then smaller
  batches, so that one event it cannot take never blocks the ones behind it.

Sending never raises: a connection error becomes a ``retry`` outcome.
"""

from __future__ import annotations

import http.client
import socket
from dataclasses import dataclass
from typing import Literal, Protocol
from urllib.parse import urlsplit

import orjson

Kind = Literal["predictions", "labels"]

_RETRY = frozenset({401, 403, 404, 407, 408, 421, 425, 429, 502, 503, 504})
"""Answers that say nothing about the batch: the monitor (or the way to it) is not
taking this collector's batches now. 401 and 403 are a token to fix; 404 a wrong URL."""

Outcome = Literal["delivered", "retry", "refused", "failed"]


@dataclass(frozen=True, slots=True)
class Rejection:
    """One event of a delivered batch that the monitor did not store."""

    index: int
    """Its place in the batch."""
    reason: str
    """The monitor's reason: ``invalid``, ``unknown_model``, ``forbidden``."""
    detail: str
    """The monitor's problems, location and message (never values)."""


@dataclass(frozen=True, slots=True)
class SendResult:
    """What became of one batch."""

    outcome: Outcome
    stored: int = 0
    duplicates: int = 0
    rejections: tuple[Rejection, ...] = ()
    detail: str = ""
    status: int | None = None
    """The HTTP status, where the monitor answered."""


class Transport(Protocol):
    """Sends one batch of one kind to the monitor."""

    def send(self, kind: Kind, body: bytes, *, gzipped: bool = False) -> SendResult:
        """Send ``body`` (a JSON batch, gzip-compressed if ``gzipped``); never raises."""
        ...

    def close(self) -> None:
        """Release connections; a later ``send`` may open new ones."""
        ...


class HttpTransport:
    """Sends over one keep-alive HTTP/1.1 connection to the monitor's ingest API.

    Not thread-safe: one transport belongs to one thread (a delivery thread of
    the SDK, the forwarder's thread).
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

    def send(self, kind: Kind, body: bytes, *, gzipped: bool = False) -> SendResult:
        """POST ``body`` to ``/v1/ingest/{kind}``."""
        try:
            status, payload = self._post(f"{self._base}/v1/ingest/{kind}", body, gzipped)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            return SendResult("retry", detail=f"monitor unreachable: {exc.__class__.__name__}")
        if 200 <= status < 300:
            return _delivered(payload, status)
        detail = f"HTTP {status}: {payload[:500].decode('utf-8', 'replace')}"
        if status in _RETRY:
            return SendResult("retry", detail=detail, status=status)
        if status >= 500:
            return SendResult("failed", detail=detail, status=status)
        return SendResult("refused", detail=detail, status=status)

    def close(self) -> None:
        """Drop the connection; the next ``send`` opens a new one."""
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


def _delivered(payload: bytes, status: int) -> SendResult:
    """The monitor's per-event answer; one it cannot read is a server failure."""
    try:
        answer = orjson.loads(payload)
        rejections = tuple(
            Rejection(
                int(r["index"]),
                str(r["reason"]),
                "; ".join(f"{p['loc']}: {p['msg']}" for p in r.get("problems", ()))[:1000],
            )
            for r in answer.get("rejected", ())
        )
        return SendResult(
            "delivered",
            stored=int(answer.get("stored", 0)),
            duplicates=int(answer.get("duplicates", 0)),
            rejections=rejections,
            status=status,
        )
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
        return SendResult("failed", detail="the monitor's answer is unreadable", status=status)
