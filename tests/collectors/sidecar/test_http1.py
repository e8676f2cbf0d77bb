"""The framer finds the same message boundaries as h11 (an independent HTTP/1.1 parser),
reports each head's exact bytes and passes everything on, however the bytes are split
into reads."""

from __future__ import annotations

import h11
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.sidecar.http1 import (
    MAX_HEAD_BYTES,
    Body,
    FramingError,
    RequestFramer,
    ResponseFramer,
)


class Requests:
    """Records what a RequestFramer reports; optionally replaces each head."""

    def __init__(self, replace: bool = False) -> None:
        self.heads: list[bytes] = []
        self.messages: list[tuple[bytes, bytes]] = []
        self._body = b""
        self._replace = replace

    def on_head(self, head: bytes) -> bytes | None:
        self.heads.append(head)
        self._body = b""
        return head.replace(b"\r\n\r\n", b"\r\nx-seen: 1\r\n\r\n") if self._replace else None

    def on_body(self, data: bytes) -> None:
        self._body += data

    def on_end(self) -> None:
        self.messages.append((self.heads[-1].split(b" ")[1], self._body))


class Responses:
    """Records what a ResponseFramer reports, given the methods of the requests."""

    def __init__(self, methods: list[bytes]) -> None:
        self.heads: list[bytes] = []
        self.messages: list[tuple[int, bytes]] = []
        self._methods = methods
        self._status = 0
        self._body = b""

    def on_head(self, head: bytes, status: int) -> Body:
        self.heads.append(head)
        self._status, self._body = status, b""
        if status < 200:
            return Body.PARSED
        method = self._methods.pop(0)
        if method == b"CONNECT" and status < 300:
            return Body.TUNNEL
        return Body.NONE if method == b"HEAD" else Body.PARSED

    def on_body(self, data: bytes) -> None:
        self._body += data

    def on_end(self) -> None:
        self.messages.append((self._status, self._body))


def feed_in_pieces(framer: RequestFramer | ResponseFramer, data: bytes, cuts: list[int]) -> bytes:
    passed = []
    pos, i = 0, 0
    while pos < len(data):
        step = cuts[i % len(cuts)]
        passed.append(framer.feed(data[pos : pos + step]))
        pos, i = pos + step, i + 1
    return b"".join(passed)


def h11_requests(data: bytes) -> list[tuple[bytes, bytes]]:
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    out, body, target = [], b"", b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Request):
            target, body = event.target, b""
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            out.append((target, body))
            conn.send(h11.Response(status_code=204, headers=[]))
            conn.send(h11.EndOfMessage())
            conn.start_next_cycle()
        else:
            return out


def h11_responses(data: bytes, methods: list[bytes]) -> list[tuple[int, bytes]]:
    conn = h11.Connection(h11.CLIENT)
    conn.receive_data(data)
    out: list[tuple[int, bytes]] = []
    for method in methods:
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "h")]))
        conn.send(h11.EndOfMessage())
        status, body = 0, b""
        while True:
            event = conn.next_event()
            if isinstance(event, h11.InformationalResponse):
                out.append((event.status_code, b""))
            elif isinstance(event, h11.Response):
                status, body = event.status_code, b""
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                out.append((status, body))
                break
            else:
                raise AssertionError(event)
        conn.start_next_cycle()
    return out


bodies = st.binary(max_size=300)
splits = st.lists(st.integers(1, 64), min_size=1, max_size=20)
requests = st.lists(st.tuples(bodies, st.booleans(), st.integers(1, 50)), min_size=1, max_size=5)


def chunked(body: bytes, size: int, trailer: bool) -> bytes:
    chunks = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(body[j : j + size]), body[j : j + size])
                      for j in range(0, len(body), size))  # fmt: skip
    return chunks + (b"0\r\nTrailer: x\r\n\r\n" if trailer else b"0\r\n\r\n")


def encode_requests(items: list[tuple[bytes, bool, int]]) -> list[tuple[bytes, bytes]]:
    """(head, rest) of each request."""
    out = []
    for i, (body, is_chunked, size) in enumerate(items):
        if is_chunked:
            head = b"POST /m%d HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" % i
            out.append((head, chunked(body, size, trailer=i % 2 == 0)))
        else:
            head = b"POST /m%d HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % (i, len(body))
            out.append((head, body))
    return out


@settings(max_examples=300, deadline=None)
@given(requests, splits, st.booleans())
def test_requests_framed_like_h11_across_any_split(
    items: list[tuple[bytes, bool, int]], cuts: list[int], replace: bool
) -> None:
    parts = encode_requests(items)
    data = b"".join(head + rest for head, rest in parts)
    sink = Requests(replace)
    framer = RequestFramer(sink)
    passed = feed_in_pieces(framer, data, cuts)
    assert sink.messages == h11_requests(data)
    assert sink.heads == [head for head, _ in parts]  # each head's exact bytes
    if replace:
        assert passed == b"".join(h.replace(b"\r\n\r\n", b"\r\nx-seen: 1\r\n\r\n") + rest
                                  for h, rest in parts)  # fmt: skip
    else:
        assert passed == data  # passed on byte for byte
    assert framer.idle


responses = st.lists(
    st.tuples(
        st.sampled_from([b"GET", b"HEAD"]),
        st.sampled_from(["length", "chunked", "204", "304", "continue"]),
        bodies,
        st.integers(1, 50),
    ),
    min_size=1,
    max_size=5,
)


def encode_responses(items: list[tuple[bytes, str, bytes, int]]) -> tuple[list[bytes], bytes]:
    heads, data = [], b""
    for method, kind, body, size in items:
        if kind == "continue":
            heads.append(b"HTTP/1.1 100 Continue\r\n\r\n")
            data += heads[-1]
            kind = "length"
        if kind in ("204", "304"):
            head = b"HTTP/1.1 %s X\r\nServer: s\r\n\r\n" % kind.encode()
            rest = b""
        elif kind == "chunked":
            head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            rest = b"" if method == b"HEAD" else chunked(body, size, trailer=size % 2 == 0)
        else:
            head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
            rest = b"" if method == b"HEAD" else body
        heads.append(head)
        data += head + rest
    return heads, data


@settings(max_examples=300, deadline=None)
@given(responses, splits)
def test_responses_framed_like_h11_across_any_split(
    items: list[tuple[bytes, str, bytes, int]], cuts: list[int]
) -> None:
    heads, data = encode_responses(items)
    methods = [method for method, *_ in items]
    sink = Responses(list(methods))
    framer = ResponseFramer(sink)
    assert feed_in_pieces(framer, data, cuts) == data
    assert sink.messages == h11_responses(data, methods)
    assert sink.heads == heads
    assert framer.idle


def test_read_until_close_ends_at_eof() -> None:
    sink = Responses([b"GET"])
    framer = ResponseFramer(sink)
    framer.feed(b"HTTP/1.1 200 OK\r\n\r\npart one, ")
    framer.feed(b"part two")
    assert sink.messages == []
    framer.eof()
    assert sink.messages == [(200, b"part one, part two")]


def test_a_truncated_body_does_not_end_at_eof() -> None:
    sink = Responses([b"GET"])
    framer = ResponseFramer(sink)
    framer.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
    framer.eof()
    assert sink.messages == []


def test_a_request_head_is_held_back_until_whole() -> None:
    framer = RequestFramer(Requests(replace=True))
    assert framer.feed(b"GET /a HTTP/1.1\r\nHost: h\r\n") == b""
    assert framer.feed(b"\r\nGET /b HT") == b"GET /a HTTP/1.1\r\nHost: h\r\nx-seen: 1\r\n\r\n"
    assert framer.feed(b"TP/1.1\r\n\r\n") == b"GET /b HTTP/1.1\r\nx-seen: 1\r\n\r\n"


def test_a_head_held_back_is_released_as_it_is() -> None:
    framer = RequestFramer(Requests(replace=True))
    assert framer.feed(b"GET /a HTTP/1.1\r\nHo") == b""
    assert framer.release() == b"GET /a HTTP/1.1\r\nHo"
    assert framer.release() == b""


def test_upgrades_and_connect_become_tunnels() -> None:
    sink = Responses([b"GET", b"CONNECT"])
    framer = ResponseFramer(sink)
    switching = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"
    assert framer.feed(switching) == switching
    assert framer.tunnel and sink.messages == [(101, b"")]
    assert framer.feed(b"not http") == b"not http"
    sink = Responses([b"CONNECT"])
    framer = ResponseFramer(sink)
    assert (
        framer.feed(b"HTTP/1.1 200 OK\r\n\r\n\x16\x03\x01")
        == b"HTTP/1.1 200 OK\r\n\r\n\x16\x03\x01"
    )
    assert framer.tunnel and sink.messages == [(200, b"")]


def test_a_refused_upgrade_request_is_followed_by_more_requests() -> None:
    sink = Requests()
    framer = RequestFramer(sink)
    data = (b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
            b"POST /next HTTP/1.1\r\nContent-Length: 2\r\n\r\nok")  # fmt: skip
    assert framer.feed(data) == data
    assert sink.messages == [(b"/ws", b""), (b"/next", b"ok")]


@pytest.mark.parametrize("bad", [
    b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"POST / HTTP/1.1\r\n folded: header\r\n\r\n",
    b"GET / HTTP/1.1\r\n" + b"X: " + b"a" * 70_000 + b"\r\n\r\n",
])  # fmt: skip
def test_what_cannot_be_framed_raises_and_keeps_the_rest(bad: bytes) -> None:
    framer = RequestFramer(Requests())
    fed = b"GET /ok HTTP/1.1\r\n\r\n"
    passed = [framer.feed(fed)]
    with pytest.raises(FramingError):
        for i in range(0, len(bad), 1000):
            fed += bad[i : i + 1000]
            passed.append(framer.feed(bad[i : i + 1000]))
    # Nothing lost for the blind relay that follows.
    assert b"".join(passed) + framer.leftover == fed


def test_a_head_larger_than_the_limit_is_not_framed() -> None:
    framer = ResponseFramer(Responses([b"GET"]))
    head = b"HTTP/1.1 200 OK\r\nX: " + b"a" * MAX_HEAD_BYTES
    with pytest.raises(FramingError):
        framer.feed(head)
    assert framer.leftover == head
