"""HTML report cost: one window of stored predictions against a reference, 20 features.

Builds a monitor in-process on SQLite, uploads a reference of 100,000 rows, stores a
window of 50,000 predictions through the ingest API, then times ``build_report`` with
row caps of 1,000, 5,000 (the default) and 20,000. The first report also pays for
Evidently's import, timed on its own.

Last line: ``import_s=I report_s_1000=A report_s_5000=B report_s_20000=C
html_mb_5000=H window_rows=N``.
"""

from __future__ import annotations

import io
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from fastapi.testclient import TestClient

from monitor.api import create_app
from monitor.report import build_report
from monitor.settings import MonitorSettings

NUMERIC = [f"n{i:02d}" for i in range(15)]
CATEGORICAL = [f"c{i}" for i in range(5)]
WINDOW = 300
START = 1_700_000_100 // WINDOW * WINDOW


def frame(rng: np.random.Generator, n: int, shift: float = 0.0) -> pd.DataFrame:
    data: dict[str, object] = {c: rng.normal(shift, 1, n) for c in NUMERIC}
    for c in CATEGORICAL:
        data[c] = rng.choice(["a", "b", "c", "d"], n)
    return pd.DataFrame(data)


def main() -> None:
    os.environ["DO_NOT_TRACK"] = "1"
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        app = create_app(MonitorSettings(database_url=url, window_seconds=WINDOW))
        with TestClient(app) as client:
            features = [{"name": c, "type": "numeric"} for c in NUMERIC] + [
                {"name": c, "type": "categorical"} for c in CATEGORICAL
            ]
            model = {"name": "bench", "task": "regression", "features": features}
            assert client.put("/v1/models/bench", json=model).status_code == 201
            buffer = io.BytesIO()
            frame(rng, 100_000).to_parquet(buffer, index=False)
            uploaded = client.put(
                "/v1/models/bench/versions/1/reference",
                content=buffer.getvalue(),
                headers={"Content-Type": "application/vnd.apache.parquet"},
            )
            assert uploaded.status_code == 201, uploaded.text
            window = frame(rng, 50_000, shift=0.1)
            records = window.to_dict("records")
            for i in range(0, len(records), 5_000):
                events = [
                    {
                        "event_id": f"e{i + j}",
                        "model": "bench",
                        "model_version": "1",
                        "timestamp": START + (i + j) * WINDOW / len(records),
                        "features": row,
                        "outputs": {"value": 0.0},
                    }
                    for j, row in enumerate(records[i : i + 5_000])
                ]
                answer = client.post("/v1/ingest/predictions", json={"events": events})
                assert answer.status_code == 200, answer.text
            store = app.state.store

            started = time.perf_counter()
            from monitor.report.build import _evidently

            _evidently()
            import_s = time.perf_counter() - started
            figures = {"import_s": f"{import_s:.1f}"}
            for rows in (1_000, 5_000, 20_000):
                report = build_report(
                    store, "bench", "1", window_seconds=WINDOW, max_rows=rows, seed=1
                )
                assert report.window_predictions == 50_000
                assert report.sampled_predictions == rows
                figures[f"report_s_{rows}"] = f"{report.build_seconds:.2f}"
                if rows == 5_000:
                    figures["html_mb_5000"] = f"{len(report.html) / 1e6:.1f}"
                print(f"{rows} rows per side: {report.build_seconds:.2f} s", flush=True)
            figures["window_rows"] = "50000"
    print(" ".join(f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
