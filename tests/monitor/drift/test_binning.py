"""Evidently's bins, rebuilt from summaries, against numpy's own binning."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from monitor.score.drift.binning import fill_empty, histogram_counts, sturges_edges

floats = hnp.arrays(
    np.float64,
    st.integers(1, 300),
    elements=st.floats(-1e9, 1e9, allow_nan=False, allow_subnormal=False),
)
integers = hnp.arrays(np.int64, st.integers(1, 300), elements=st.integers(-50, 50))


@settings(max_examples=300, deadline=None)
@given(values=st.one_of(floats, integers))
def test_sturges_edges_equal_numpys_from_a_summary_of_the_data(values) -> None:
    expected = np.histogram_bin_edges(values, bins="sturges")
    got = sturges_edges(values.min(), values.max(), values.size, values.dtype.kind == "i")
    np.testing.assert_array_equal(got, expected)


@settings(max_examples=300, deadline=None)
@given(values=st.one_of(floats, integers), other=floats)
def test_counts_on_sorted_values_equal_numpys_histogram(values, other) -> None:
    edges = np.histogram_bin_edges(np.concatenate([values, other]), bins="sturges")
    got = histogram_counts(np.sort(values.astype(np.float64)), edges)
    np.testing.assert_array_equal(got, np.histogram(values, edges)[0])


def test_empty_bins_get_a_ten_thousandth_or_a_millionth_of_the_smallest_share() -> None:
    np.testing.assert_array_equal(fill_empty(np.array([0.5, 0.5, 0.0])), [0.5, 0.5, 1e-4])
    shares = np.array([0.99995, 0.00005, 0.0])
    np.testing.assert_array_equal(fill_empty(shares), [0.99995, 0.00005, 0.00005 / 1e6])
    untouched = np.array([0.25, 0.75])
    assert fill_empty(untouched) is untouched
