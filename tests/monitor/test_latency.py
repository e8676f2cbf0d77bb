"""Latency quantiles: within their documented precision, in memory that does not grow."""

from __future__ import annotations

import tracemalloc

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from monitor.core.latency import RELATIVE_ERROR, LatencyHistogram
from monitor.core.windows import Window
from monitor.store import Store
from tests.conftest import credit_model
from tests.monitor.test_store import prediction_row

QS = [0.0, 0.01, 0.5, 0.95, 0.99, 1.0]


def _within(reported: float, exact: float) -> bool:
    return abs(reported - exact) <= RELATIVE_ERROR * abs(exact) + 1e-6 + 1e-12 * abs(exact)


latencies = arrays(
    np.float64,
    st.integers(1, 400),
    elements=st.one_of(
        st.floats(0, 3600),
        st.floats(1e-7, 1e-5),
        st.sampled_from([0.0, 1e-6, 0.001, 0.01, 1.0, 3600.0]),
    ),
)


@settings(max_examples=300, deadline=None)
@given(latencies, st.integers(1, 3))
def test_quantiles_match_numpy_within_the_stated_precision(values, parts) -> None:
    # Counted in chunks and merged, as windows and rollups would be.
    merged = LatencyHistogram.zero()
    for chunk in np.array_split(values, parts):
        h = LatencyHistogram.zero()
        h.update(chunk)
        merged = merged.merge(h)
    assert merged.total == len(values)
    reported = merged.quantiles(QS)
    assert reported is not None
    for q, r in zip(QS, reported, strict=True):
        exact = float(np.quantile(values, q))
        assert _within(r, exact), (q, r, exact)


def test_missing_latencies_are_skipped_and_none_is_no_quantile() -> None:
    h = LatencyHistogram.zero()
    assert h.quantiles([0.5]) is None
    h.update(np.array([np.nan, 0.2, np.nan]))
    assert h.total == 1
    (p50,) = h.quantiles([0.5]) or (None,)
    assert p50 is not None and _within(p50, 0.2)


def test_window_latencies_read_in_memory_that_does_not_grow_with_the_window(
    sqlite_url: str,
) -> None:
    store = Store(sqlite_url)
    store.migrate()
    store.put_model(credit_model())
    rng = np.random.default_rng(5)
    n = 100_000
    values = rng.lognormal(-4, 0.7, n)
    for start in range(0, n, 10_000):
        store.insert_predictions(
            [
                prediction_row(i, ts=1000.0 + i * 1e-3, latency_seconds=float(values[i]))
                for i in range(start, start + 10_000)
            ]
        )
    window = Window.of_time("credit", "v1", 1000.0, 200)
    tracemalloc.start()
    try:
        count, histogram = store.window_latencies(window)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        store.close()
    assert count == n
    # Every latency as a Python float alone would be 2.4 MB (and their list 0.8 MB).
    assert peak < 2_000_000, f"peak {peak / 1e6:.1f} MB while reading {n} latencies"
    for q, r in zip(QS, histogram.quantiles(QS) or (), strict=True):
        assert _within(r, float(np.quantile(values, q))), q
