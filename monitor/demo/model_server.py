"""The demo's sample model, served over HTTP in the MLflow ``/invocations`` format.

Run as ``python -m monitor.demo.model_server --port 8701``: it trains a logistic
regression at start-up (a second, no download) and answers
``POST /invocations`` with ``{"dataframe_split": {"columns": [...], "data": [[...]]}}``
by ``{"predictions": [[p_malignant, p_benign], ...]}`` (what MLflow serves for a
classifier logged with ``pyfunc_predict_fn="predict_proba"``); ``GET /ping`` answers
200 once it is ready.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

from monitor.demo.data import FEATURES, load

MAX_BODY = 1024 * 1024


def train() -> object:
    """Fit the demo model on the training split."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load()
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    model.fit(data.train[list(FEATURES)].to_numpy(), data.train["target"].to_numpy())
    return model


def make_handler(model: object) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to a fitted model."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body leave without a delayed-ACK wait

        def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
            if self.path == "/ping":
                self._answer(200, {"status": "ready"})
            else:
                self._answer(404, {"error": "not found"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/invocations":
                self._answer(404, {"error": "not found"})
                return
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._answer(413, {"error": f"body over {MAX_BODY} bytes"})
                return
            try:
                split = json.loads(self.rfile.read(length))["dataframe_split"]
                position = [split["columns"].index(f) for f in FEATURES]
                rows = np.asarray(split["data"], dtype=float)[:, position]
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                self._answer(400, {"error": f"expected dataframe_split with {FEATURES}: {exc}"})
                return
            probabilities = model.predict_proba(rows)  # type: ignore[attr-defined]
            self._answer(200, {"predictions": [[float(p) for p in row] for row in probabilities]})

        def _answer(self, status: int, body: dict[str, object]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: object) -> None:
            pass  # one line per request would drown the demo's own output

    return Handler


def main() -> None:
    """Train the model and serve it until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8701)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(train()))
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
