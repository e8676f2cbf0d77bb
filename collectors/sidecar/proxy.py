"""Proxy: the caller's bytes to the model and the model's bytes back, with a copy kept.

Each caller connection is paired with one upstream connection, so keep-alive,
pipelining and connection closes behave exactly as they would direct. Bytes are
relayed as they arrive, and the only change to a request is the ``traceparent``
header, which carries the sidecar's child span upstream. The copy of each exchange
(both heads as received, both bodies) is appended to the spool when its response
ends, before the response's last bytes go to the caller
(:meth:`~collectors.sidecar.recorder.Recorder.finished`); all parsing of headers and
payloads happens later, in the shipper process.

Fail open: bytes that are not HTTP/1.1 this proxy can frame are relayed blind for the
rest of the connection (counted); a full spool or disk sheds the copy (counted by the
spool); the monitor is never on this path.

Limits keep slow or idle callers from taking the connections that others need
(:class:`_Connections`): a header timeout, an idle timeout, a minimum request body
rate and a connection cap, checked by a sweep a few times a second (nothing on the
per-request path but a counter), each closing counted. The model server is reached
only once a caller's first request head is whole, so a caller that never completes
one costs the model nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import resource
from collections import deque
from dataclasses import dataclass, field
from time import perf_counter
from typing import cast

from collectors.sidecar.decode import Decoder
from collectors.sidecar.http1 import Body, FramingError, RequestFramer, ResponseFramer
from collectors.sidecar.recorder import Recorder
from collectors.sidecar.trace import parse_traceparent

logger = logging.getLogger("sidewatch.sidecar")

# Header names are case-insensitive; a class per letter is the fastest search for one.
_TRACEPARENT_LINE = re.compile(
    rb"\r\n[Tt][Rr][Aa][Cc][Ee][Pp][Aa][Rr][Ee][Nn][Tt][ \t]*:[ \t]*([^\r\n]*?)[ \t]*\r\n"
)
_WRITE_HIGH = 256 * 1024
_LINGER_SECONDS = 5.0
_PENDING_MAX = 1024 * 1024
_BAD_GATEWAY_BODY = b"sidewatch sidecar: the model server is unreachable\n"
_BAD_GATEWAY = (
    b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
    b"connection: close\r\n\r\n%s" % (len(_BAD_GATEWAY_BODY), _BAD_GATEWAY_BODY)
)
_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
_FD_RESERVE = 64
"""Descriptors kept for the rest of the process (spool, admin, shipper, tap)."""
_MAX_CONNECTIONS = 4096


def default_max_connections() -> int:
    """The connection cap the file limit allows: two descriptors per connection (the
    caller's and the model's), a reserve kept for the rest, at most 4,096."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return _MAX_CONNECTIONS
    return max(1, min(_MAX_CONNECTIONS, (soft - _FD_RESERVE) // 2))


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    """How the proxy copies exchanges."""

    upstream_host: str
    upstream_port: int
    capture_max_bytes: int = 1024 * 1024
    """Largest body copied for capture; a larger one passes through uncaptured."""
    sample_rate: float = 1.0
    """Share of exchanges captured; responses other than 2xx are counted, never spooled."""
    model: str | None = None
    """The model's name for the metrics' ``model`` label; default: from the path."""
    decoders: tuple[Decoder, ...] = ()
    """The payload formats, whose paths name models."""
    header_timeout: float = 15.0
    """Seconds a request head may take once begun; then 408 and close."""
    idle_timeout: float = 60.0
    """Seconds a connection may stay open with no request under way."""
    body_timeout: float = 30.0
    """Window (seconds) over which a request body must arrive at ``body_min_rate``."""
    body_min_rate: int = 1024
    """Slowest request body kept, bytes per second (0: no minimum)."""
    max_connections: int = 512
    """Most caller connections open at once."""


@dataclass
class ProxyStats:
    """Connection counters the event loop keeps (plain ints, read at scrape time)."""

    connections: int = 0
    """Caller connections accepted."""
    open_connections: int = 0
    upstream_errors: int = 0
    unframed: int = 0
    """Connections relayed blind because their bytes could not be framed."""
    limits: dict[str, int] = field(default_factory=dict)
    """Connections closed by each limit (see ``names.LIMITS``)."""
    max_connections: int = 0

    def count_limit(self, limit: str) -> None:
        """Count one connection closed by ``limit``."""
        self.limits[limit] = self.limits.get(limit, 0) + 1


class _InFlight:
    """A request on its way: what the capture keeps of it until its response ends."""

    __slots__ = ("head", "started", "sampled", "body", "size")

    def __init__(self, head: bytes, started: float, sampled: bool) -> None:
        self.head = head
        self.started = started
        self.sampled = sampled
        self.body: list[bytes] | None = []
        """Body pieces; None once the body went over the capture limit."""
        self.size = 0


class _RequestSink:
    """The request direction of a connection: opens an in-flight exchange per request,
    replaces ``traceparent`` with the sidecar's child context."""

    __slots__ = ("_waiting", "current", "_limit", "_rate", "heads")

    def __init__(self, waiting: deque[_InFlight], config: ProxyConfig) -> None:
        self._waiting = waiting
        self.current: _InFlight | None = None
        """The request whose body is arriving (its ``size`` counts every body byte)."""
        self._limit = config.capture_max_bytes
        self._rate = config.sample_rate
        self.heads = 0
        """Request heads received on this connection."""

    def on_head(self, head: bytes) -> bytes | None:
        rate = self._rate
        flight = _InFlight(head, perf_counter(), rate >= 1.0 or random.random() < rate)
        self._waiting.append(flight)
        self.current = flight
        self.heads += 1
        match = _TRACEPARENT_LINE.search(head)
        if match is None:
            return None
        trace = parse_traceparent(match.group(1))
        if trace is None:
            return None
        start, end = match.span(1)
        return head[:start] + trace.child_header() + head[end:]

    def on_body(self, data: bytes) -> None:
        flight = self.current
        if flight is not None:
            flight.size += len(data)
            body = flight.body
            if body is not None:
                if flight.size > self._limit:
                    flight.body = None
                else:
                    body.append(data)

    def on_end(self) -> None:
        self.current = None


class _ResponseSink:
    """The response direction: pairs each response with the oldest request waiting and
    hands the finished exchange to the recorder."""

    __slots__ = (
        "_conn",
        "_waiting",
        "_recorder",
        "_limit",
        "flight",
        "_head",
        "_status",
        "_body",
        "_size",
    )

    def __init__(self, conn: _Downstream) -> None:
        self._conn = conn
        self._waiting = conn.waiting
        self._recorder = conn.capture
        self._limit = conn.config.capture_max_bytes
        self.flight: _InFlight | None = None
        """The request whose response is arriving."""
        self._head = b""
        self._status = 0
        self._body: list[bytes] | None = None
        self._size = 0

    def on_head(self, head: bytes, status: int) -> Body:
        if status < 200 and status != 101:  # informational: the final response follows
            self.flight = None
            return Body.PARSED
        if not self._waiting:
            raise FramingError("a response without a request")
        flight = self.flight = self._waiting.popleft()
        self._head = head
        self._status = status
        # Only a 2xx sampled in is spooled (an error is no prediction: counted only).
        self._body = [] if flight.sampled and 200 <= status < 300 else None
        self._size = 0
        if status == 101:
            self._conn.start_tunnel()
            return Body.TUNNEL
        if flight.head.startswith((b"HEAD ", b"CONNECT ")):
            if flight.head.startswith(b"HEAD "):
                return Body.NONE
            if 200 <= status < 300:
                self._conn.start_tunnel()
                return Body.TUNNEL
        return Body.PARSED

    def on_body(self, data: bytes) -> None:
        body = self._body
        if body is not None:
            self._size += len(data)
            if self._size > self._limit:
                self._body = None
            else:
                body.append(data)

    def on_end(self) -> None:
        flight = self.flight
        if flight is None:  # the end of an informational response
            return
        self.flight = None
        self._recorder.finished(flight.head, flight.body, self._head, self._body, self._status,
                                flight.started, perf_counter(), flight.sampled)  # fmt: skip


class _Upstream(asyncio.Protocol):
    """The sidecar's connection to the model server, serving one caller connection.

    Both sockets have ``TCP_NODELAY`` (uvloop and asyncio set it on every TCP
    transport): each write is a whole message or the rest of one, sent at once.
    """

    def __init__(self, conn: _Downstream) -> None:
        self._conn = conn
        self.transport: asyncio.Transport | None = None
        self.sink = _ResponseSink(conn)
        self.framer = ResponseFramer(self.sink)

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
            self.framer.eof()
        self._conn.upstream_lost()

    def pause_writing(self) -> None:
        self._conn.held_back = True
        self._conn.transport.pause_reading()

    def resume_writing(self) -> None:
        self._conn.held_back = False
        self._conn.transport.resume_reading()


class _Downstream(asyncio.Protocol):
    """A caller's connection to the sidecar."""

    def __init__(
        self,
        config: ProxyConfig,
        capture: Recorder,
        stats: ProxyStats,
        connections: _Connections,
    ) -> None:
        self.config = config
        self.capture = capture
        self.stats = stats
        self._connections = connections
        self.waiting: deque[_InFlight] = deque()
        self.blind = False
        self.held_back = False
        """Reading paused because the model reads this caller's bytes slower."""
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self._pending: list[bytes] | None = []
        self._pending_size = 0
        self._eof = False
        self._closed = False
        self._refused = False
        self._paused = False
        self._failed = False
        """The model server could not be reached: the caller is answered 502."""
        self._answered = False
        self._upstream = _Upstream(self)
        self._requests = _RequestSink(self.waiting, config)
        self._framer = RequestFramer(self._requests)
        self._connect_task: asyncio.Task[None] | None = None
        self._mark: tuple[int, int, float, int] = (-1, -1, 0.0, 0)
        """What the last sweep saw: phase, request count, since when, body bytes."""

    # -- caller side -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        if not self._connections.admit(self):
            self._refused = self._closed = True
            self.transport.abort()  # at the cap with every connection busy
            return
        self.transport.set_write_buffer_limits(high=_WRITE_HIGH)
        self.stats.connections += 1
        self.stats.open_connections += 1
        # The model server is reached once the first request head is whole (_relay).

    def data_received(self, data: bytes) -> None:
        if self._failed:
            self._answer_bad_gateway()  # and what the caller sends is dropped
            return
        if not self.blind:
            try:
                data = self._framer.feed(data)
            except FramingError:
                data = self._framer.leftover
                self.go_blind()
            if not data:  # a head held back until it is whole
                return
        self._relay(data)

    def _relay(self, data: bytes) -> None:
        up = self._upstream.transport
        if self._pending is None and up is not None:
            up.write(data)
        else:
            self._hold(data)
            if self._connect_task is None:
                self._connect_task = asyncio.get_running_loop().create_task(self._connect())

    def eof_received(self) -> bool:
        if self._failed:
            return False  # the caller read the 502 and closed: close too
        self._eof = True
        if not self.blind:
            held = self._framer.release()
            if held:
                self._relay(held)
        if self._connect_task is None:
            return False  # nothing for the model: close
        up = self._upstream.transport
        if up is not None and self._pending is None and up.can_write_eof():
            up.write_eof()
        return True  # keep the connection half-open until the response is back

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refused:
            return
        self._closed = True
        self._connections.discard(self)
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
            self._failed = True
            if self._pending:  # the caller has spoken: answer now (else on its request)
                self._answer_bad_gateway()
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

    def _answer_bad_gateway(self) -> None:
        if self._answered or self._closed:
            return
        self._answered = True
        self.transport.write(_BAD_GATEWAY)
        # Close this side only; closing the socket with the caller's request unread
        # would reset the connection, and the caller could lose the 502 to the reset.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        asyncio.get_running_loop().call_later(_LINGER_SECONDS, self.transport.close)

    def _hold(self, data: bytes) -> None:
        """Keep what the caller sent before the upstream connection is up."""
        assert self._pending is not None
        self._pending.append(data)
        self._pending_size += len(data)
        if self._pending_size > _PENDING_MAX and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def upstream_lost(self) -> None:
        if not self._closed:
            self.transport.close()  # flushes what the model sent first

    # -- helpers -----------------------------------------------------------------------

    def go_blind(self) -> None:
        """Relay this connection's bytes from now on without framing them."""
        if not self.blind:
            self.blind = True
            self.stats.unframed += 1
            self.waiting.clear()

    def start_tunnel(self) -> None:
        """The connection switched protocols: relay both ways from now on."""
        self.blind = True

    # -- limits ------------------------------------------------------------------------

    @property
    def evictable(self) -> bool:
        """True if no request is under way: idle, or a head not yet whole."""
        return not (
            self.blind
            or self._closed
            or self._framer.in_body
            or self.waiting
            or self._upstream.sink.flight is not None
        )

    def broken_limit(self, now: float) -> str | None:
        """The limit this connection broke by ``now``, if any (called by the sweep,
        which sees a phase begin within one of its intervals)."""
        if self.blind or self._closed:
            return None  # tunnels and unframed bytes are relayed as they are
        config = self.config
        requests = self._requests
        key = requests.heads
        size = 0
        if self._framer.in_body:
            phase = _BODY
            flight = requests.current
            size = flight.size if flight is not None else 0
        elif self.waiting or self._upstream.sink.flight is not None:
            phase = _MODEL  # the model's time: never limited here
        elif self._framer.partial_head:
            phase = _HEAD
        else:
            phase = _IDLE  # before the first request too: a pool may connect ahead
        last, last_key, since, last_size = self._mark
        if (
            phase != last
            or key != last_key
            or phase == _MODEL
            or (phase == _BODY and (self.held_back or self._paused))
        ):
            self._mark = (phase, key, now, size)
            return None
        elapsed = now - since
        if phase == _HEAD:
            return "header_timeout" if elapsed >= config.header_timeout else None
        if phase == _IDLE:
            return "idle_timeout" if elapsed >= config.idle_timeout else None
        if elapsed < config.body_timeout:
            return None
        if size - last_size < config.body_min_rate * elapsed:
            return "body_rate"
        self._mark = (phase, key, now, size)
        return None

    def close_for(self, limit: str) -> None:
        """Close this connection for ``limit`` (counted); a caller whose head timed out
        with nothing under way is answered 408 first (an idle connection is closed
        without a word: a client would take a 408 for the answer to its next request)."""
        self.stats.count_limit(limit)
        if limit == "header_timeout" and not self.waiting and self._upstream.sink.flight is None:
            self.transport.write(_REQUEST_TIMEOUT)
        self.transport.close()


_HEAD, _BODY, _MODEL, _IDLE = range(4)


class _Connections:
    """The open caller connections: the cap on them, and the sweep that closes those
    that broke a timeout.

    Enforcing the timeouts by a sweep a few times a second keeps timers off the
    per-request path; a limit then acts up to one interval late.
    """

    def __init__(self, config: ProxyConfig, stats: ProxyStats) -> None:
        self._config = config
        self._stats = stats
        self._open: dict[_Downstream, None] = {}
        """Insertion-ordered: the oldest connection first."""
        self.interval = min(
            1.0, max(0.05, min(config.header_timeout, config.idle_timeout,
                               config.body_timeout) / 4)
        )  # fmt: skip
        stats.max_connections = config.max_connections

    def admit(self, conn: _Downstream) -> bool:
        """Register a new connection; at the cap, close the oldest one with no request
        under way to make room. False if every one has one (the new one is refused)."""
        if len(self._open) >= self._config.max_connections:
            victim = next((c for c in self._open if c.evictable), None)
            if victim is None:
                self._stats.count_limit("connections_refused")
                return False
            self._open.pop(victim, None)
            victim.close_for("connections_evicted")
        self._open[conn] = None
        return True

    def discard(self, conn: _Downstream) -> None:
        """Forget a connection that closed."""
        self._open.pop(conn, None)

    def sweep(self, now: float) -> None:
        """Close the connections that broke a limit."""
        for conn in list(self._open):
            limit = conn.broken_limit(now)
            if limit is not None:
                self._open.pop(conn, None)
                conn.close_for(limit)

    async def run(self, server: asyncio.Server) -> None:
        """Sweep every :attr:`interval` while ``server`` serves."""
        while server.is_serving():
            await asyncio.sleep(self.interval)
            self.sweep(perf_counter())


async def start_proxy(
    config: ProxyConfig, recorder: Recorder, stats: ProxyStats, host: str, port: int
) -> asyncio.Server:
    """Listen on ``host:port`` and proxy every connection to the upstream (the limits
    are enforced while the server serves)."""
    loop = asyncio.get_running_loop()
    connections = _Connections(config, stats)
    server = await loop.create_server(
        lambda: _Downstream(config, recorder, stats, connections),
        host,
        port,
        reuse_address=True,
        backlog=1024,
    )
    _sweeps.add(task := loop.create_task(connections.run(server)))
    task.add_done_callback(_sweeps.discard)
    return server


_sweeps: set[asyncio.Task[None]] = set()
"""Running sweep tasks (a task only weakly referenced by the loop could be collected)."""
