"""HTTP/1.1 framing: bytes of one direction of a connection in, message boundaries out.

The proxy relays bytes; this module only finds where each message's head and body
begin and end, so that the proxy can copy heads and bodies for capture and pair each
response with its request. llhttp (Node.js's parser, through ``httptools``) parses in
C: start lines, headers, ``Content-Length``, ``chunked``, bodiless statuses, upgrades.
This module adds what llhttp leaves to its caller:

- each head's raw bytes, exactly as received: llhttp reports pieces, not positions,
  so the framer follows where each message begins across messages and reads (heads
  end at the first blank line, bodies are as long as llhttp says, chunk lines end at
  CRLF) and keeps a head, chunk line or trailer begun at the end of a read;
- a request head replaced before it is passed on (the proxy's child ``traceparent``):
  a request head split across reads is held back until it is whole;
- responses without a body that llhttp cannot know of (answers to ``HEAD``; ``2xx``
  to ``CONNECT``), and tunnels (``101``, ``CONNECT``).

Bodies are never buffered: body bytes are reported as llhttp consumes them. Bytes this
module cannot frame raise :class:`FramingError`, and the proxy relays the rest of the
connection blind.
"""

from __future__ import annotations

import logging
import re
from enum import IntEnum
from typing import Protocol

from collectors.errors import MissingDependencyError

try:
    from httptools import (
        HttpParserCallbackError,
        HttpParserError,
        HttpParserUpgrade,
        HttpRequestParser,
        HttpResponseParser,
    )
except ImportError as exc:  # pragma: no cover - the dev environment has every extra
    raise MissingDependencyError("httptools", "sidecar") from exc

logger = logging.getLogger("sidewatch.sidecar")

MAX_HEAD_BYTES = 64 * 1024
"""Largest request or status line plus headers that is framed (servers allow 8-64 KiB);
also the most a chunk line or trailer section may take."""

_CRLF = b"\r\n"
_HEAD_END = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"(?i)\r\ncontent-length[ \t]*:")
_CHUNKED = re.compile(rb"(?i)\r\ntransfer-encoding[ \t]*:[^\r\n]*chunked[ \t]*\r\n")


class FramingError(Exception):
    """The bytes are not HTTP/1.1 this module can frame."""


class Body(IntEnum):
    """What follows a response head, as the response's sink decides."""

    PARSED = 0
    """What the head says (llhttp frames it)."""
    NONE = 1
    """No body, whatever the head says: the answer to ``HEAD``."""
    TUNNEL = 2
    """No more HTTP: a ``2xx`` answer to ``CONNECT``."""


class _BodySink(Protocol):
    """What both sinks receive after a head."""

    def on_body(self, data: bytes) -> None:
        """Body bytes (without chunk framing)."""
        ...

    def on_end(self) -> None:
        """The message ended (an informational ``1xx`` response is one too)."""
        ...


class RequestSink(_BodySink, Protocol):
    """Receives the requests that a :class:`RequestFramer` finds."""

    def on_head(self, head: bytes) -> bytes | None:
        """A head arrived (raw, final blank line included); returns the bytes to pass
        on in its place, or None to pass it on unchanged."""
        ...


class ResponseSink(_BodySink, Protocol):
    """Receives the responses that a :class:`ResponseFramer` finds."""

    def on_head(self, head: bytes, status: int) -> Body:
        """A head arrived (raw, final blank line included); returns what follows it
        (after ``101 Switching Protocols``, a tunnel whatever it returns)."""
        ...


class _Stop(Exception):
    """Raised in a callback to stop llhttp right after a head."""


class _Framer:
    """What both directions share: llhttp, positions in the bytes, kept tails, tunnels.

    Positions are in ``_buf``: the tail kept from the last read followed by this read.
    ``_at`` is the first byte the framer has not accounted for: between messages, where
    the next message begins; in a body, where its next byte (or chunk line) is.
    """

    _hold = False
    _sink: _BodySink
    """Set by each direction's framer before ``__init__`` runs."""

    def __init__(self) -> None:
        self._parser = self._new_parser()
        self._buf = b""
        self._tail = b""
        """Bytes from the end of the last read that begin a head, chunk line or
        trailer not yet whole (kept to find its end; held back if it is a head that
        this framer may rewrite)."""
        self._tail_passed = True
        self._at = 0
        self._in_body = False
        self._chunked = False
        self._sized = False
        self._head = b""
        self._head_end = 0
        self._edits: list[tuple[int, int, bytes]] = []
        self._stop: FramingError | Body | None = None
        self.tunnel = False
        """True once the connection stopped speaking HTTP (upgrade, ``CONNECT``)."""
        self.leftover = b""
        """After a :class:`FramingError`: the bytes that were not passed on."""

    def _new_parser(self) -> HttpRequestParser | HttpResponseParser:
        raise NotImplementedError

    @property
    def idle(self) -> bool:
        """True between messages with nothing partial kept."""
        return not self._in_body and not self._tail

    @property
    def in_body(self) -> bool:
        """True while a message's body is arriving."""
        return self._in_body

    @property
    def partial_head(self) -> bool:
        """True between messages when the start of the next head is kept, not whole."""
        return not self._in_body and bool(self._tail)

    def feed(self, data: bytes) -> bytes:
        """Consume ``data``; returns the bytes to pass on now.

        Raises:
            FramingError: On bytes that cannot be framed; :attr:`leftover` holds what
                was not passed on.
        """
        if self.tunnel:
            return data
        tail = self._tail
        buf = tail + data if tail else data
        self._buf = buf
        self._at = 0
        skip = len(tail) if self._tail_passed else 0
        try:
            try:
                self._parser.feed_data(data)
            except (HttpParserUpgrade, HttpParserError) as exc:
                self._resume(exc, len(tail))
            end = len(buf)
            if self._at < end:
                end = self._keep_tail(buf)
            elif tail:
                self._tail = b""
                self._tail_passed = True
        except FramingError:
            self.leftover = buf[skip:] if self._hold else data
            self._tail = b""
            self._edits.clear()
            raise
        if not self._hold:
            return data
        if self._edits:
            return self._apply_edits(buf, skip, end)
        return buf if skip == 0 and end == len(buf) else buf[skip:end]

    def _keep_tail(self, buf: bytes) -> int:
        """Keep the bytes after ``_at``: a head, chunk line or trailer section begun
        and not finished (stray CRLFs between messages are none). Returns where the
        bytes to pass on end (before a head held back)."""
        at = self._at
        end = len(buf)
        if end - at > MAX_HEAD_BYTES:
            raise FramingError("head, chunk line or trailers too large")
        rest = buf[at:]
        if self._in_body or rest.strip(_CRLF):
            self._tail = rest
            self._tail_passed = self._in_body or not self._hold
            return end if self._tail_passed else at
        self._tail = b""
        self._tail_passed = True
        return end

    def _resume(self, exc: Exception, pos: int) -> None:
        """llhttp stopped at ``pos`` (in ``_buf``) with ``exc``: start it again after the
        message it stopped at, until the rest is fed."""
        while True:
            if isinstance(exc, HttpParserUpgrade):
                # After a request to upgrade (or CONNECT) llhttp stops at the byte that
                # follows. The upgrade happens only if the response agrees (the proxy
                # then starts a tunnel); until then what follows is HTTP.
                pos += exc.args[0]
            elif isinstance(exc, HttpParserCallbackError):
                stop = self._stop
                self._stop = None
                if isinstance(stop, FramingError):
                    raise stop from None
                if stop is None:
                    cause = exc.__context__
                    if not isinstance(cause, FramingError):
                        logger.warning("framing failed: %r", cause)
                    raise FramingError(str(cause or exc)) from exc
                # A response with no body, or the last before a tunnel: it ended with
                # its head.
                self._in_body = False
                self._end_early()
                if stop is Body.TUNNEL:
                    self.tunnel = True
                    return
                pos = self._head_end
            else:
                raise FramingError(str(exc)) from exc
            self._parser = self._new_parser()
            self._at = pos
            try:
                self._parser.feed_data(memoryview(self._buf)[pos:])
                return
            except (HttpParserUpgrade, HttpParserError) as again:
                exc = again

    def _end_early(self) -> None:
        self._sink.on_end()

    def on_body(self, data: bytes) -> None:
        self._at += len(data)
        self._sized = True
        self._sink.on_body(data)

    def on_message_complete(self) -> None:
        self._message_end()
        self._sink.on_end()

    def _apply_edits(self, buf: bytes, start: int, end: int) -> bytes:
        pieces = []
        pos = start
        for head_start, head_end, replacement in self._edits:
            pieces.append(buf[pos:head_start])
            pieces.append(replacement)
            pos = head_end
        pieces.append(buf[pos:end])
        self._edits.clear()
        return b"".join(pieces)

    def _head_bytes(self) -> bytes:
        """The head llhttp just finished (called from ``on_headers_complete``)."""
        buf = self._buf
        start = self._at
        while buf[start] in b"\r\n":  # stray CRLFs before a message are allowed
            start += 1
        end = buf.find(_HEAD_END, start) + 4
        if end < 4 or end - start > MAX_HEAD_BYTES:
            self._stop = FramingError("head too large" if end >= 4 else "head not found")
            raise _Stop
        self._head_end = self._at = end
        self._in_body = True
        self._chunked = False
        return buf[start:end]

    # -- llhttp's callbacks (positions only; the subclasses tell their sinks) ----------

    def on_chunk_header(self) -> None:
        self._chunked = True
        self._sized = False
        self._at = self._buf.find(_CRLF, self._at) + 2  # past the chunk-size line

    def on_chunk_complete(self) -> None:
        if self._sized:  # past the CRLF after the chunk's data
            self._at += 2
            self._sized = False

    def _message_end(self) -> None:
        self._in_body = False
        if self._chunked:  # after the last chunk: no trailers and CRLF, or trailers
            at = self._at
            buf = self._buf
            self._at = at + 2 if buf.startswith(_CRLF, at) else buf.find(_HEAD_END, at) + 4


class RequestFramer(_Framer):
    """Frames the requests of one connection, incrementally.

    Args:
        sink: Told about each head (and may replace it), body piece and message end.
    """

    _hold = True
    _sink: RequestSink

    def __init__(self, sink: RequestSink) -> None:
        self._sink = sink
        super().__init__()

    def _new_parser(self) -> HttpRequestParser:
        return HttpRequestParser(self)

    def release(self) -> bytes:
        """The head held back, to pass on as it is (the caller closed its side: the
        head will never be whole)."""
        held = b"" if self._tail_passed else self._tail
        self._tail = b""
        self._tail_passed = True
        return held

    def on_headers_complete(self) -> None:
        head = self._head_bytes()
        replacement = self._sink.on_head(head)
        if replacement is not None:
            end = self._head_end
            self._edits.append((end - len(head), end, replacement))


class ResponseFramer(_Framer):
    """Frames the responses of one connection, incrementally.

    Args:
        sink: Told about each head (and says what follows it), body piece and end.
    """

    _sink: ResponseSink

    def __init__(self, sink: ResponseSink) -> None:
        self._sink = sink
        super().__init__()

    def _new_parser(self) -> HttpResponseParser:
        return HttpResponseParser(self)

    def on_headers_complete(self) -> None:
        head = self._head = self._head_bytes()
        status = self._parser.get_status_code()  # type: ignore[union-attr]
        body = self._sink.on_head(head, status)
        if status == 101:
            body = Body.TUNNEL
        if body:  # not Body.PARSED: stop llhttp right after the head
            self._stop = body
            raise _Stop

    def eof(self) -> None:
        """The connection closed: ends a body read until the close (one framed neither
        by length nor by chunks; a truncated one does not end)."""
        head = self._head
        if self._in_body and not _CONTENT_LENGTH.search(head) and not _CHUNKED.search(head):
            self._in_body = False
            self._sink.on_end()
