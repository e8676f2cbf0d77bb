"""HTTP/1.1 framing: bytes of one direction of a connection in, message boundaries out.

The proxy relays bytes; this module only finds where each message's head and body
begin and end (RFC 9112 section 6: ``Content-Length``, ``chunked``, bodiless statuses,
read-until-close), so that the proxy can copy bodies for capture and pair each
response with its request. It never buffers a body: body bytes are reported as they
are consumed. A message this module cannot frame raises :class:`FramingError`, and the
proxy falls back to relaying the connection blind.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

MAX_HEAD_BYTES = 64 * 1024
"""Largest request or status line plus headers that is framed (servers allow 8-64 KiB)."""

_MAX_CHUNK_LINE = 4096
_CRLF = b"\r\n"


class FramingError(Exception):
    """The bytes are not HTTP/1.1 this module can frame."""


class BodyKind(Enum):
    """How a message's body is delimited."""

    NONE = 0
    LENGTH = 1
    CHUNKED = 2
    UNTIL_CLOSE = 3
    TUNNEL = 4
    """After ``101 Switching Protocols`` or a successful ``CONNECT``: no more HTTP."""


@dataclass(frozen=True, slots=True)
class Framing:
    """How the body of the message that follows a head is delimited."""

    kind: BodyKind
    length: int = 0


NO_BODY = Framing(BodyKind.NONE)


_HEADER_LINE = re.compile(rb"\r\n([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*([^\r\n]*?)[ \t]*(?=\r\n)")


@dataclass(frozen=True, slots=True)
class Head:
    """A parsed message head: the start line and the headers, names lower-cased."""

    start_line: bytes
    headers: dict[bytes, bytes]
    """The last value of each header, by lower-cased name."""
    repeated: frozenset[bytes]
    """Names that appear more than once."""
    raw: bytes
    """The head exactly as received, final blank line included."""
    lines: tuple[tuple[bytes, bytes], ...]
    """Every header line, in order (names lower-cased)."""

    def get(self, name: bytes) -> bytes | None:
        """The last value of header ``name`` (lower-case), or None."""
        return self.headers.get(name)

    def all(self, name: bytes) -> list[bytes]:
        """Every value of header ``name`` (lower-case)."""
        if name not in self.repeated:
            value = self.headers.get(name)
            return [] if value is None else [value]
        return [value for key, value in self.lines if key == name]


def parse_head(raw: bytes) -> Head:
    """Parse a head (ending in a blank line) into its start line and headers."""
    end = raw.find(_CRLF)
    found = _HEADER_LINE.findall(raw, end, len(raw) - 2)
    if len(found) != raw.count(_CRLF) - 2:  # a line that is not ``name: value``
        raise FramingError("malformed header line")
    lines = tuple((name.lower(), value) for name, value in found)
    headers = dict(lines)
    repeated = frozenset() if len(headers) == len(lines) else frozenset(
        name for name in headers if sum(1 for n, _ in lines if n == name) > 1
    )
    return Head(raw[:end], headers, repeated, raw, lines)


def request_framing(head: Head) -> Framing:
    """How a request's body is delimited (RFC 9112 section 6.3)."""
    coding = head.get(b"transfer-encoding")
    if coding is not None:
        if coding.rsplit(b",", 1)[-1].strip().lower() != b"chunked":
            raise FramingError("a request's transfer coding must end in chunked")
        return Framing(BodyKind.CHUNKED)
    return _length_framing(head) or NO_BODY


def response_framing(head: Head, request_method: bytes) -> Framing:
    """How a response's body is delimited, given the method of its request."""
    status = response_status(head)
    if status == 101 or (request_method == b"CONNECT" and 200 <= status < 300):
        return Framing(BodyKind.TUNNEL)
    if request_method == b"HEAD" or status < 200 or status in (204, 304):
        return NO_BODY
    coding = head.get(b"transfer-encoding")
    if coding is not None:
        if coding.rsplit(b",", 1)[-1].strip().lower() == b"chunked":
            return Framing(BodyKind.CHUNKED)
        return Framing(BodyKind.UNTIL_CLOSE)
    return _length_framing(head) or Framing(BodyKind.UNTIL_CLOSE)


def response_status(head: Head) -> int:
    """The status code of a response head."""
    parts = head.start_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or len(parts[1]) != 3:
        raise FramingError("malformed status line")
    try:
        return int(parts[1])
    except ValueError:
        raise FramingError("malformed status code") from None


def _length_framing(head: Head) -> Framing | None:
    value = head.headers.get(b"content-length")
    if value is None:
        return None
    if value.isdigit() and b"content-length" not in head.repeated:  # the usual case
        length = int(value)
        return Framing(BodyKind.LENGTH, length) if length else NO_BODY
    values = {v.strip() for item in head.all(b"content-length") for v in item.split(b",")}
    if len(values) > 1 or not all(v.isdigit() for v in values):
        raise FramingError("conflicting or malformed Content-Length")
    length = int(values.pop())
    return Framing(BodyKind.LENGTH, length) if length else NO_BODY


class FrameSink(Protocol):
    """Receives the messages that a :class:`Framer` finds."""

    def on_head(self, head: Head) -> Framing:
        """A head arrived; return how its body is delimited."""
        ...

    def on_body(self, data: bytes) -> None:
        """Body bytes (without chunk framing)."""
        ...

    def on_end(self) -> None:
        """The message ended."""
        ...


class _State(Enum):
    HEAD = 0
    LENGTH = 1
    CHUNK_SIZE = 2
    CHUNK_DATA = 3
    CHUNK_DATA_END = 4
    TRAILER = 5
    UNTIL_CLOSE = 6
    TUNNEL = 7


class Framer:
    """Frames the messages of one direction of a connection, incrementally.

    Args:
        sink: Told about each head, body piece and message end.
        rewrite_head: Optional; given each head, returns the bytes to pass on in its
            place (the request direction uses it to pass on a child trace context).
        passthrough: Optional; receives the bytes to pass on (heads as rewritten,
            bodies raw, chunk framing included). Without it nothing is passed on.
    """

    def __init__(
        self,
        sink: FrameSink,
        *,
        rewrite_head: Callable[[Head], bytes] | None = None,
        passthrough: Callable[[bytes], None] | None = None,
    ) -> None:
        self._sink = sink
        self._rewrite = rewrite_head
        self._out = passthrough
        self._state = _State.HEAD
        self._buf = b""
        self._remaining = 0
        self._pos = 0
        self.leftover = b""
        """After a :class:`FramingError`: the bytes that were not passed on."""

    @property
    def idle(self) -> bool:
        """True between messages (nothing partial held)."""
        return self._state is _State.HEAD and not self._buf

    def feed(self, data: bytes) -> None:
        """Consume ``data``; raises :class:`FramingError` on bytes it cannot frame."""
        buf = self._buf + data if self._buf else data
        self._buf = b""
        self._pos = 0
        try:
            self._feed(buf)
        except FramingError:
            self.leftover = buf[self._pos :]
            raise

    def _feed(self, buf: bytes) -> None:
        # self._pos marks what has been passed on, for a caller that falls back to
        # relaying blind after a FramingError.
        pos = 0
        end = len(buf)
        out = self._out
        while pos < end:
            self._pos = pos
            state = self._state
            if state is _State.HEAD:
                stop = buf.find(b"\r\n\r\n", pos)
                if stop < 0:
                    if end - pos > MAX_HEAD_BYTES:
                        raise FramingError("head too large")
                    self._buf = buf[pos:]
                    return
                if stop - pos > MAX_HEAD_BYTES:
                    raise FramingError("head too large")
                raw = buf[pos : stop + 4]
                if raw[:2] == _CRLF:  # a stray CRLF between messages is allowed
                    pos += 2
                    if out is not None:
                        out(_CRLF)
                    continue
                head = parse_head(raw)
                framing = self._sink.on_head(head)
                if out is not None:
                    out(self._rewrite(head) if self._rewrite is not None else raw)
                pos = stop + 4
                self._begin_body(framing)
            elif state is _State.LENGTH or state is _State.CHUNK_DATA:
                take = min(self._remaining, end - pos)
                piece = buf[pos : pos + take]
                pos += take
                self._remaining -= take
                if out is not None:
                    out(piece)
                self._sink.on_body(piece)
                if self._remaining == 0:
                    if state is _State.LENGTH:
                        self._finish()
                    else:
                        self._state = _State.CHUNK_DATA_END
            elif state is _State.CHUNK_SIZE or state is _State.TRAILER:
                stop = buf.find(_CRLF, pos)
                if stop < 0:
                    if end - pos > _MAX_CHUNK_LINE:
                        raise FramingError("chunk line too long")
                    self._buf = buf[pos:]
                    return
                line = buf[pos:stop]
                if state is _State.TRAILER:
                    if out is not None:
                        out(buf[pos : stop + 2])
                    pos = stop + 2
                    if not line:
                        self._finish()
                    continue
                size = line.split(b";", 1)[0].strip()
                if not size or len(size) > 16 or size.strip(b"0123456789abcdefABCDEF"):
                    raise FramingError("malformed chunk size")
                self._remaining = int(size, 16)
                if out is not None:
                    out(buf[pos : stop + 2])
                pos = stop + 2
                self._state = _State.CHUNK_DATA if self._remaining else _State.TRAILER
            elif state is _State.CHUNK_DATA_END:
                if end - pos < 2:
                    self._buf = buf[pos:]
                    return
                if buf[pos : pos + 2] != _CRLF:
                    raise FramingError("chunk data not followed by CRLF")
                if out is not None:
                    out(_CRLF)
                pos += 2
                self._state = _State.CHUNK_SIZE
            else:  # UNTIL_CLOSE or TUNNEL: everything is body (or opaque)
                piece = buf[pos:]
                pos = end
                if out is not None:
                    out(piece)
                if state is _State.UNTIL_CLOSE:
                    self._sink.on_body(piece)

    def eof(self) -> None:
        """The connection closed: ends a read-until-close body."""
        if self._state is _State.UNTIL_CLOSE:
            self._finish()

    @property
    def tunnel(self) -> bool:
        """True once the connection stopped speaking HTTP (upgrade, CONNECT)."""
        return self._state is _State.TUNNEL

    def start_tunnel(self) -> None:
        """Pass everything on from now on without framing."""
        self._state = _State.TUNNEL

    def _begin_body(self, framing: Framing) -> None:
        kind = framing.kind
        if kind is BodyKind.NONE:
            self._finish()
        elif kind is BodyKind.LENGTH:
            self._remaining = framing.length
            self._state = _State.LENGTH
        elif kind is BodyKind.CHUNKED:
            self._state = _State.CHUNK_SIZE
        elif kind is BodyKind.UNTIL_CLOSE:
            self._state = _State.UNTIL_CLOSE
        else:
            self._sink.on_end()
            self._state = _State.TUNNEL

    def _finish(self) -> None:
        self._state = _State.HEAD
        self._sink.on_end()
