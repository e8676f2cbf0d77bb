"""Proxy: the caller's bytes to the model and the model's bytes back, with a copy kept.

Each caller connection is paired with one upstream connection, so keep-alive,
pipelining and connection closes behave exactly as they would direct. Bytes are
relayed as they arrive, and the only change to a request is the ``traceparent``
header, which carries the sidecar's child span upstream. The copy of each exchange is
appended to the spool when its response ends, before the response's last bytes go to
the caller (:func:`~collectors.sidecar.capture.encode_exchange`); all decoding happens
later, in the shipper process.

Fail open: bytes that are not HTTP/1.1 this proxy can frame are relayed blind for the
rest of the connection (counted); a full spool or disk sheds the copy (counted by the
spool); the monitor is never on this path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import time
from collections import deque
from dataclasses import dataclass
from typing import cast

from collectors.sidecar.capture import Exchange, Recorder, RequestStats
from collectors.sidecar.decode import Decoder
from collectors.sidecar.http1 import (
    NO_BODY,
    BodyKind,
    Framer,
    Framing,
    FramingError,
    Head,
    request_framing,
    response_framing,
    response_status,
)
from collectors.sidecar.trace import parse_traceparent
from collectors.spool import Spool

logger = logging.getLogger("sidewatch.sidecar")

_TRACEPARENT_LINE = re.compile(rb"(?im)^traceparent:[^\r\n]*")
_WRITE_HIGH = 256 * 1024
_PENDING_MAX = 1024 * 1024
_BAD_GATEWAY_BODY = b"sidewatch sidecar: the model server is unreachable\n"
_BAD_GATEWAY = (
    b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
    b"connection: close\r\n\r\n%s" % (len(_BAD_GATEWAY_BODY), _BAD_GATEWAY_BODY)
)


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """How the proxy copies exchanges."""

    upstream_host: str
    upstream_port: int
    capture_max_bytes: int = 1024 * 1024
    """Largest body copied for capture; a larger one passes through uncaptured."""
    sample_rate: float = 1.0
    """Share of exchanges captured; error responses are always captured."""
    correlation_header: bytes = b"x-request-id"
    """Request header whose value becomes the events' correlation key."""
    model: str | None = None
    """The model's name for the metrics' ``model`` label; default: from the path."""
    decoders: tuple[Decoder, ...] = ()
    """The payload formats, whose paths name models."""


@dataclass
class ProxyStats:
    """Connection counters the event loop keeps."""

    connections: int = 0
    open_connections: int = 0
    upstream_errors: int = 0
    unframed: int = 0
    """Connections relayed blind because their bytes could not be framed."""


class _RequestSink:
    def __init__(self, conn: _Downstream) -> None:
        self._conn = conn

    def on_head(self, head: Head) -> Framing:
        conn = self._conn
        config = conn.config
        method, _, rest = head.start_line.partition(b" ")
        target = rest.rpartition(b" ")[0]
        path = target.split(b"?", 1)[0].decode("latin-1")
        if path.startswith(("http://", "https://")):  # absolute form
            path = "/" + path.split("/", 3)[-1] if path.count("/") >= 3 else "/"
        trace = parse_traceparent(head.get(b"traceparent"))
        exchange = Exchange(
            exchange_id=conn.capture.new_id(),
            method=method,
            path=path,
            wall_time=time.time(),
            started=time.perf_counter(),
            sampled=config.sample_rate >= 1.0 or random.random() < config.sample_rate,
            request_type=head.get(b"content-type") or b"",
            request_encoding=head.get(b"content-encoding") or b"",
            correlation=head.get(config.correlation_header) or b"",
        )
        if trace is not None:
            exchange.trace_id = trace.trace_id
            exchange.parent_span_id = trace.parent_span_id
            conn.child_trace = trace.child_header()
        conn.waiting.append(exchange)
        return request_framing(head)

    def on_body(self, data: bytes) -> None:
        exchange = self._conn.waiting[-1]
        body = exchange.request_body
        if body is not None:
            exchange.request_size += len(data)
            if exchange.request_size > self._conn.config.capture_max_bytes:
                exchange.request_body = None
                exchange.request_size = 0
            else:
                body.append(data)

    def on_end(self) -> None:
        pass


class _ResponseSink:
    def __init__(self, conn: _Downstream) -> None:
        self._conn = conn
        self._informational = False
        self._exchange: Exchange | None = None

    def on_head(self, head: Head) -> Framing:
        status = response_status(head)
        if 100 <= status < 200 and status != 101:
            self._informational = True
            return NO_BODY
        self._informational = False
        waiting = self._conn.waiting
        if not waiting:
            raise FramingError("a response without a request")
        exchange = waiting.popleft()
        exchange.status = status
        exchange.response_type = head.get(b"content-type") or b""
        exchange.response_encoding = head.get(b"content-encoding") or b""
        if not (exchange.sampled or status >= 400):
            exchange.response_body = None
        self._exchange = exchange
        framing = response_framing(head, exchange.method)
        if framing.kind is BodyKind.TUNNEL:
            self._conn.start_tunnel()
        return framing

    def on_body(self, data: bytes) -> None:
        exchange = self._exchange
        if exchange is not None and exchange.response_body is not None:
            exchange.response_size += len(data)
            if exchange.response_size > self._conn.config.capture_max_bytes:
                exchange.response_body = None
                exchange.response_size = 0
            else:
                exchange.response_body.append(data)

    def on_end(self) -> None:
        if self._informational:
            self._informational = False
            return
        exchange = self._exchange
        if exchange is None:
            return
        self._exchange = None
        exchange.latency = time.perf_counter() - exchange.started
        self._conn.capture.finished(exchange)


class _Upstream(asyncio.Protocol):
    """The sidecar's connection to the model server, serving one caller connection."""

    def __init__(self, conn: _Downstream) -> None:
        self._conn = conn
        self.transport: asyncio.Transport | None = None
        self.framer = Framer(_ResponseSink(conn))

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.set_write_buffer_limits(high=_WRITE_HIGH)

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        if not conn.blind:
            # Framed first, so that an exchange whose response ends in these bytes is in
            # the spool before the caller can have its last byte (a kill -9 in between
            # would otherwise lose a prediction the caller got).
            try:
                self.framer.feed(data)
            except FramingError:
                conn.go_blind()
        conn.transport.write(data)

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._conn.blind:
            with contextlib.suppress(FramingError):
                self.framer.eof()
        self._conn.upstream_lost()

    def pause_writing(self) -> None:
        self._conn.transport.pause_reading()

    def resume_writing(self) -> None:
        self._conn.transport.resume_reading()


class _Downstream(asyncio.Protocol):
    """A caller's connection to the sidecar."""

    def __init__(self, config: ProxyConfig, capture: Recorder, stats: ProxyStats) -> None:
        self.config = config
        self.capture = capture
        self.stats = stats
        self.child_trace: bytes | None = None
        self.waiting: deque[Exchange] = deque()
        self.blind = False
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self._out: list[bytes] = []
        self._pending: list[bytes] | None = []
        self._pending_size = 0
        self._eof = False
        self._closed = False
        self._paused = False
        self._upstream = _Upstream(self)
        self._framer = Framer(_RequestSink(self), rewrite_head=self._rewrite,
                              passthrough=self._out.append)  # fmt: skip
        self._connect_task: asyncio.Task[None] | None = None

    # -- caller side -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.set_write_buffer_limits(high=_WRITE_HIGH)
        self.stats.connections += 1
        self.stats.open_connections += 1
        self._connect_task = asyncio.get_running_loop().create_task(self._connect())

    def data_received(self, data: bytes) -> None:
        if self.blind:
            self._send(data)
            return
        out = self._out
        try:
            self._framer.feed(data)
        except FramingError:
            out.append(self._framer.leftover)
            self.go_blind()
        if out:
            self._send(out[0] if len(out) == 1 else b"".join(out))
            out.clear()

    def eof_received(self) -> bool:
        self._eof = True
        up = self._upstream.transport
        if up is not None and self._pending is None and up.can_write_eof():
            up.write_eof()
        return True  # keep the connection half-open until the response is back

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.stats.open_connections -= 1
        if self._connect_task is not None:
            self._connect_task.cancel()
        if self._upstream.transport is not None:
            self._upstream.transport.close()

    def pause_writing(self) -> None:
        if self._upstream.transport is not None:
            self._upstream.transport.pause_reading()

    def resume_writing(self) -> None:
        if self._upstream.transport is not None:
            self._upstream.transport.resume_reading()

    # -- upstream side -----------------------------------------------------------------

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.create_connection(
                lambda: self._upstream, self.config.upstream_host, self.config.upstream_port
            )
        except OSError as exc:
            self.stats.upstream_errors += 1
            logger.warning("upstream %s:%d unreachable: %s", self.config.upstream_host,
                           self.config.upstream_port, exc)  # fmt: skip
            if not self._closed:
                self.transport.write(_BAD_GATEWAY)
                self.transport.close()
            return
        up = self._upstream.transport
        assert up is not None
        if self._closed:
            up.close()
            return
        pending, self._pending = self._pending or [], None
        if pending:
            up.write(b"".join(pending))
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        if self._eof and up.can_write_eof():
            up.write_eof()

    def _send(self, data: bytes) -> None:
        if self._pending is None:
            up = self._upstream.transport
            if up is not None:
                up.write(data)
            return
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > _PENDING_MAX and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def upstream_lost(self) -> None:
        if not self._closed:
            self.transport.close()  # flushes what the model sent first

    # -- helpers -----------------------------------------------------------------------

    def _rewrite(self, head: Head) -> bytes:
        child, self.child_trace = self.child_trace, None
        if child is None:
            return head.raw
        line = b"traceparent: " + child
        return _TRACEPARENT_LINE.sub(lambda _m: line, head.raw)

    def go_blind(self) -> None:
        """Relay this connection's bytes from now on without framing them."""
        if not self.blind:
            self.blind = True
            self.stats.unframed += 1
            self.waiting.clear()

    def start_tunnel(self) -> None:
        """The connection switched protocols: relay both ways from now on."""
        self.blind = True


async def start_proxy(
    config: ProxyConfig,
    spool: Spool,
    stats: ProxyStats,
    requests: RequestStats,
    host: str,
    port: int,
) -> asyncio.Server:
    """Listen on ``host:port`` and proxy every connection to the upstream."""
    loop = asyncio.get_running_loop()
    capture = Recorder(config.model, config.decoders, spool, requests)
    return await loop.create_server(
        lambda: _Downstream(config, capture, stats), host, port, reuse_address=True, backlog=1024
    )
