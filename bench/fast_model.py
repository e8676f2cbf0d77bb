"""A fast model server for the sidecar benchmark: Open Inference Protocol v2 over uvicorn.

A linear model on four features, answered by a bare ASGI app (no framework), so the
server costs about what uvicorn itself costs: the floor of the Python model servers
(MLServer, KServe, MLflow all serve through uvicorn).
"""

from __future__ import annotations

from typing import Any

import orjson

_WEIGHTS = (0.4, -0.2, 0.1, 0.05)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["method"] != "POST":
        await _reply(send, b'{"live": true}')
        return
    # Pieces joined once: ``body +=`` copies all so far at each piece, quadratic in a
    # large upload (100 MB took 12.7 s and stalled every other request on this loop).
    pieces = []
    while True:
        message = await receive()
        pieces.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    request = orjson.loads(b"".join(pieces))
    tensor = request["inputs"][0]
    rows, cols = tensor["shape"]
    data = tensor["data"]
    classes = []
    for i in range(rows):
        score = sum(w * x for w, x in zip(_WEIGHTS, data[i * cols : (i + 1) * cols], strict=False))
        classes.append(1 if score > 0 else 0)
    answer = orjson.dumps({
        "model_name": "bench", "model_version": "v1", "id": request.get("id", ""),
        "outputs": [{"name": "predict", "shape": [rows, 1], "datatype": "INT64", "data": classes}],
    })  # fmt: skip
    await _reply(send, answer)


async def _reply(send: Any, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
