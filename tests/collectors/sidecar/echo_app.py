"""An upstream for the proxy's tests: answers what it received, in MLflow's format.

``POST`` any path: ``{"predictions": [1], "echo": {length, sha256, traceparent,
authorization_sha256}}``; ``/chunked`` answers with a chunked body; a request header
``x-echo-status: 500`` answers that status (with an error document, as model servers
do), ``x-echo-set-cookie`` adds the header ``set-cookie`` (:data:`SET_COOKIE`);
``GET`` answers a small fixed body; a WebSocket echoes what it receives.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

SET_COOKIE = b"sid=set-c00kie-5ecret-xyz; HttpOnly"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "websocket":
        await _echo_websocket(receive, send)
        return
    if scope["type"] != "http":
        return
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    headers = dict(scope["headers"])
    echo = {
        "method": scope["method"],
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "traceparent": headers.get(b"traceparent", b"").decode(),
        # A digest: the credential itself must not appear in a body that is captured.
        "authorization_sha256": hashlib.sha256(headers.get(b"authorization", b"")).hexdigest(),
    }
    answer = orjson.dumps({"predictions": [1], "echo": echo})
    status = int(headers.get(b"x-echo-status", b"200"))
    extra = [(b"set-cookie", SET_COOKIE)] if b"x-echo-set-cookie" in headers else []
    if status != 200:
        answer = orjson.dumps({"error": "failed", "echo": echo})
    if scope["path"] == "/chunked":
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})  # fmt: skip
        for i in range(0, len(answer), 7):
            await send({"type": "http.response.body", "body": answer[i : i + 7],
                        "more_body": True})  # fmt: skip
        await send({"type": "http.response.body", "body": b""})
        return
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(answer)),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})


async def _echo_websocket(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
        elif message["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text"),
                        "bytes": message.get("bytes")})  # fmt: skip
        else:
            return
