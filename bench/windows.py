"""What the windows beyond the base one cost to score, on SQLite.

1. Rollup: a day of 288 five-minute base windows, 20 numeric features, their profiles
   stored as ingest stores them. The drift profiles of the day from the merge of the
   stored ones, against profiling the same day from its rows (what a rollup would cost
   without merging); the row path is timed per row, so that it can be scaled to a
   busier day.
2. Segments: one base window of ``--segment-rows`` predictions over 20 values of
   ``region``. Selecting one value's rows through the JSON filter (their latencies) and
   profiling them, without and with an expression index on that key (dropped again:
   Sidewatch creates none).
3. Count windows: placing ``--place-rows`` predictions in ingest order, per prediction.

Last line: ``rollup_day_merge_s=A rollup_day_rows_s_per_100k=B segment_select_ms=C
segment_select_indexed_ms=D segment_profile_ms=E segment_profile_indexed_ms=F place_us=G``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collectors.contract import ModelDescription
from monitor.core.profile import ProfileKey, ReferenceProfile, profile_rows
from monitor.core.windows import Window, window_start
from monitor.reference import profile_reference
from monitor.score.scorer import WindowScorer
from monitor.store import Store

MODEL, VERSION = "bench", "1"
FEATURES = [f"f{i:02d}" for i in range(20)]
BASE = 300
DAY = 86_400
T0 = 1_700_006_400.0  # a multiple of a day
VALUES = [f"r{i:02d}" for i in range(20)]


def rows_for(
    rng: random.Random, n: int, start: float, span: float, tag: str
) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{tag}-{i}",
            "model": MODEL,
            "model_version": VERSION,
            "ts": start + rng.random() * span,
            "received_at": time.time(),
            "features": {name: rng.gauss(0, 1) for name in FEATURES},
            "outputs": {"score": 0.5},
            "latency_seconds": 0.001,
            "trace_id": None,
            "parent_span_id": None,
            "variant": None,
            "stage": None,
            "segment": {"region": rng.choice(VALUES)},
            "correlation_key": None,
        }
        for i in range(n)
    ]


def setup(path: Path) -> tuple[Store, ModelDescription, ReferenceProfile]:
    store = Store(f"sqlite:///{path}")
    store.migrate()
    model = ModelDescription.model_validate(
        {
            "name": MODEL,
            "task": "regression",
            "features": [{"name": n, "type": "numeric"} for n in FEATURES],
        }
    )
    store.put_model(model)
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({n: rng.normal(size=20_000) for n in FEATURES})
    profile = profile_reference(frame, model)
    store.add_reference(
        MODEL, VERSION, rows=len(frame), source_format="csv", data=b"", profile=profile
    )
    return store, model, ReferenceProfile.from_json(profile)


def insert(store: Store, rows: list[dict[str, Any]], reference: ReferenceProfile) -> None:
    """As ingest stores rows: their base-window profiles merged in the same transaction."""
    kinds: dict[str, Any] = {n: "numeric" for n in FEATURES}
    bins = {n: f.bins for n, f in reference.features.items()}

    def profiles(new: list[dict[str, Any]]) -> dict[ProfileKey, Any]:
        groups: dict[float, list[dict[str, Any]]] = {}
        for row in new:
            groups.setdefault(window_start(row["ts"], BASE), []).append(row["features"])
        return {
            ProfileKey(MODEL, VERSION, BASE, start, "", name): (1, p)
            for start, feats in groups.items()
            for name, p in profile_rows(feats, kinds, bins).items()
        }

    for i in range(0, len(rows), 1000):
        store.insert_predictions(rows[i : i + 1000], profiles)


def timed(fn: Any, repeats: int = 3) -> float:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--day-rows", type=int, default=57_600, help="rows over the day")
    parser.add_argument("--segment-rows", type=int, default=30_000)
    parser.add_argument("--place-rows", type=int, default=50_000)
    args = parser.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        store, model, reference = setup(Path(tmp) / "windows.db")
        insert(store, rows_for(rng, args.day_rows, T0, DAY, "day"), reference)
        scorer = WindowScorer(store, window_seconds=BASE, min_window_events=30)
        day = Window.of_time(MODEL, VERSION, T0, DAY)
        merge_s = timed(lambda: scorer._window_profiles(model, day, 1, reference))
        bins = {n: f.bins for n, f in reference.features.items()}
        kinds: dict[str, Any] = {n: "numeric" for n in FEATURES}
        rows_s = timed(lambda: store.profile_window(day, kinds, bins), repeats=1)
        merged = scorer._window_profiles(model, day, 1, reference)
        from_rows = store.profile_window(day, kinds, bins)
        assert all(np.array_equal(merged[n].histogram, from_rows[n].histogram) for n in FEATURES), (
            "the merge of the base windows is the profile of the day's rows"
        )
        print(
            f"rollup: day of {DAY // BASE} base windows x {len(FEATURES)} features, "
            f"{args.day_rows} rows: merged {merge_s:.3f} s, from rows {rows_s:.3f} s "
            f"({rows_s / args.day_rows * 1e5:.2f} s per 100,000 rows)"
        )

        start = T0 + DAY
        insert(store, rows_for(rng, args.segment_rows, start, BASE, "seg"), reference)
        window = Window.of_time(MODEL, VERSION, start, BASE)
        counts = store.segment_counts(window, "region")
        segment = Window.of_time(MODEL, VERSION, start, BASE, ("region", VALUES[0]))
        plain = timed(lambda: store.profile_window(segment, kinds, bins), repeats=7)
        count_s = timed(lambda: store.segment_counts(window, "region"), repeats=7)
        scan = timed(lambda: store.window_latencies(segment), repeats=7)
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE INDEX ix_bench_region ON predictions "
                # The expression exactly as the store's filter writes it, so that it is used.
                """(model, model_version, CAST(JSON_EXTRACT(segment, '$."region"') AS VARCHAR),"""
                " ts)"
            )
        indexed = timed(lambda: store.profile_window(segment, kinds, bins), repeats=7)
        indexed_scan = timed(lambda: store.window_latencies(segment), repeats=7)
        with store.engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_bench_region")
        print(
            f"segments: window of {args.segment_rows} rows, {len(counts)} values: counting "
            f"them {count_s * 1e3:.1f} ms; selecting one value ({counts[VALUES[0]]} rows) "
            f"{scan * 1e3:.1f} ms, with an expression index {indexed_scan * 1e3:.1f} ms; "
            f"profiling it {plain * 1e3:.1f} ms, with the index {indexed * 1e3:.1f} ms"
        )

        before = store.placed_count(MODEL, VERSION)
        started = time.perf_counter()
        placed = store.place_predictions(MODEL, VERSION, None)
        place_s = time.perf_counter() - started
        assert placed == (before, args.day_rows + args.segment_rows)
        extra = rows_for(rng, args.place_rows, start + BASE, BASE, "late")
        insert(store, extra, reference)
        started = time.perf_counter()
        store.place_predictions(MODEL, VERSION, [(start + BASE, start + 2 * BASE)])
        marked_s = time.perf_counter() - started
        print(
            f"count windows: placing every stored row ({placed[1]}) {place_s:.2f} s; "
            f"{args.place_rows} new rows in a marked window {marked_s:.2f} s"
        )
        store.close()
    print(
        f"rollup_day_merge_s={merge_s:.3f} "
        f"rollup_day_rows_s_per_100k={rows_s / args.day_rows * 1e5:.2f} "
        f"segment_select_ms={scan * 1e3:.1f} segment_select_indexed_ms={indexed_scan * 1e3:.1f} "
        f"segment_profile_ms={plain * 1e3:.1f} segment_profile_indexed_ms={indexed * 1e3:.1f} "
        f"place_us={marked_s / args.place_rows * 1e6:.1f}"
    )


if __name__ == "__main__":
    main()
