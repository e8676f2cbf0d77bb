"""Tap: KServe's payload logger in, exchanges for the recorder out.

For deployments that already copy their traffic: KServe's logger posts each request
and each response as a CloudEvent in binary mode (``ce-*`` headers, the v1 or v2 JSON
as the body), the two sharing ``ce-id``. The receiver pairs them (in either order;
an unpaired half expires after ``pair_ttl_seconds`` and is counted) and hands the
pair to the same decoders the proxy uses.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from collectors.contract import NAME_PATTERN
from collectors.sidecar.recorder import Recorder

REQUEST_TYPE = "org.kubeflow.serving.inference.request"
RESPONSE_TYPE = "org.kubeflow.serving.inference.response"
_CE_ID = re.compile(r"^[\x21-\x7e]{1,256}$")
_NAME = re.compile(NAME_PATTERN)


@dataclass(frozen=True, slots=True)
class _Half:
    body: bytes
    content_type: str
    received: float
    """``time.perf_counter()`` on arrival."""
    model: str | None


class TapReceiver:
    """Receives CloudEvents on ``host:port`` in a thread and pairs them.

    Args:
        host: Address to listen on.
        port: Port (0 picks a free one; see :attr:`port`).
        recorder: Counts paired exchanges and spools them.
        model: Model name when the events do not say (``ce-inferenceservicename``).
        max_body_bytes: Largest event body accepted.
        sample_rate: Share of pairs captured.
        pair_ttl_seconds: How long a half waits for its other half.
        max_pending: Most halves waiting; the oldest expire beyond it.
    """

    def __init__(
        self,
        host: str,
        port: int,
        recorder: Recorder,
        *,
        model: str | None,
        max_body_bytes: int,
        sample_rate: float = 1.0,
        pair_ttl_seconds: float = 60.0,
        max_pending: int = 10_000,
    ) -> None:
        self._recorder = recorder
        self._model = model
        self._max_body = max_body_bytes
        self._sample_rate = sample_rate
        self._ttl = pair_ttl_seconds
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._pending: OrderedDict[tuple[str, str], _Half] = OrderedDict()
        self.received = 0
        self.rejected = 0
        self.unpaired = 0
        self._server = ThreadingHTTPServer((host, port), _handler(self))
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="sidewatch-tap", daemon=True
        )

    def start(self) -> None:
        """Start receiving."""
        self._thread.start()

    def stop(self) -> None:
        """Stop receiving; unpaired halves are dropped."""
        self._server.shutdown()
        self._server.server_close()

    def accept(self, ce_id: str, ce_type: str, body: bytes, content_type: str,
               model: str | None) -> None:  # fmt: skip
        """Take one event: keep it until its other half arrives, then queue the pair."""
        source = "request" if ce_type == REQUEST_TYPE else "response"
        other = "response" if source == "request" else "request"
        half = _Half(body, content_type, time.perf_counter(), model)
        with self._lock:
            self.received += 1
            self._expire(half.received)
            partner = self._pending.pop((ce_id, other), None)
            if partner is None:
                self._pending[(ce_id, source)] = half
                return
            request, response = (half, partner) if source == "request" else (partner, half)
            self._record(request, response)

    def _record(self, request: _Half, response: _Half) -> None:
        """Hand a pair to the recorder, as the exchange a proxy would have seen."""
        model = self._model or request.model or response.model or "unknown"
        v2 = b'"datatype"' in request.body
        path = f"/v2/models/{model}/infer" if v2 else f"/v1/models/{model}:predict"
        request_head = (b"POST %s HTTP/1.1\r\ncontent-type: %s\r\n\r\n"
                        % (path.encode(), request.content_type.encode("latin-1")))  # fmt: skip
        response_head = (b"HTTP/1.1 200 OK\r\ncontent-type: %s\r\n\r\n"
                         % response.content_type.encode("latin-1"))  # fmt: skip
        self._recorder.finished(
            request_head,
            [request.body],
            response_head,
            [response.body],
            200,
            request.received,
            max(request.received, response.received),
            self._sample_rate >= 1.0 or random.random() < self._sample_rate,
            model if model != "unknown" else "",
        )

    def _expire(self, now: float) -> None:
        while self._pending:
            key, half = next(iter(self._pending.items()))
            if now - half.received < self._ttl and len(self._pending) < self._max_pending:
                return
            del self._pending[key]
            self.unpaired += 1


def _handler(tap: TapReceiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            ce_id = self.headers.get("ce-id", "")
            ce_type = self.headers.get("ce-type", "")
            length = self.headers.get("content-length", "")
            if not length.isdigit():
                self._reply(411, b"a Content-Length is required\n", close=True)
                return
            if int(length) > tap._max_body:
                tap.rejected += 1
                self._reply(413, b"event body over the sidecar's capture limit\n", close=True)
                return
            body = self.rfile.read(int(length))
            if not _CE_ID.match(ce_id) or ce_type not in (REQUEST_TYPE, RESPONSE_TYPE):
                tap.rejected += 1
                self._reply(400, b"expected a KServe inference CloudEvent in binary mode: "
                            b"ce-id and ce-type " + REQUEST_TYPE.encode() + b" or "
                            + RESPONSE_TYPE.encode() + b"\n")  # fmt: skip
                return
            service = self.headers.get("ce-inferenceservicename")
            model = service if service and _NAME.match(service) and len(service) <= 128 else None
            tap.accept(ce_id, ce_type, body, self.headers.get("content-type", ""), model)
            self._reply(202, b"")

        def _reply(self, status: int, body: bytes, *, close: bool = False) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    return Handler
