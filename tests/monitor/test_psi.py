"""PSI, the one definition, against an independent computation (pandas bins, scipy's
relative entropy), on the coarse reference-quantile bins that profiles score it on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import rel_entr

from monitor.core.profile import FeatureProfile, ReferenceProfile, coarse_edges
from monitor.score.drift import DRIFT_TESTS
from monitor.score.drift.profiled import counted_by_value
from monitor.score.psi import EMPTY_BIN_SHARE, fill_empty, psi


def evidently_fill(shares: np.ndarray) -> np.ndarray:
    """Evidently 0.7's rule, written out again: 1e-4, or the smallest share / 1e6."""
    out = shares.copy()
    if (out == 0).any():
        smallest = out[out > 0].min()
        out[out == 0] = smallest / 1e6 if smallest <= 1e-4 else 1e-4
    return out


def oracle_psi(reference: np.ndarray, current: np.ndarray, edges: list[float]) -> float:
    """PSI as the symmetric Kullback-Leibler divergence, on bins cut by pandas.

    Bins empty in both samples are left out (as Evidently's union of observed values).
    """
    cuts = [-np.inf, *edges, np.inf]
    n_bins = len(cuts) - 1
    r = np.bincount(pd.cut(reference, cuts, right=True, labels=False), minlength=n_bins)
    c = np.bincount(pd.cut(current, cuts, right=True, labels=False), minlength=n_bins)
    seen = (r > 0) | (c > 0)
    r, c = r[seen] / r.sum(), c[seen] / c.sum()
    r, c = evidently_fill(r), evidently_fill(c)
    return float(np.sum(rel_entr(c, r) + rel_entr(r, c)))


def profile_psi(reference: np.ndarray, current: np.ndarray, coarse: int = 10) -> tuple[float, list]:
    ref = ReferenceProfile.build({"x": ("numeric", reference)}, len(reference)).features["x"]
    cur = FeatureProfile.of(current, "numeric", ref.bins)
    score = DRIFT_TESTS["psi"].score(ref, cur, 0.2, coarse)
    if counted_by_value(ref):  # at most five values: one bin each, as Evidently counts them
        return score.statistic, ref.bins.edges.tolist()
    return score.statistic, coarse_edges(ref.bins, ref.profile.histogram, coarse).tolist()


def test_the_fill_rule_is_evidentlys() -> None:
    assert fill_empty(np.array([0.5, 0.5])).tolist() == [0.5, 0.5]
    np.testing.assert_array_equal(fill_empty(np.array([0.0, 1.0])), [EMPTY_BIN_SHARE, 1.0])
    tiny = np.array([0.0, 5e-5, 1 - 5e-5])
    np.testing.assert_array_equal(fill_empty(tiny), evidently_fill(tiny))
    assert psi([0.5, 0.5], [0.5, 0.5]) == 0.0


def test_numeric_psi_is_on_reference_deciles() -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(0, 1, 50_000)
    current = rng.normal(0.5, 1.2, 3000)
    value, edges = profile_psi(reference, current)
    # The coarse edges are fine-bin edges; each within one fine bin (0.1%) of a decile.
    ranks = np.searchsorted(np.sort(reference), edges, "right") / reference.size
    np.testing.assert_allclose(ranks, np.arange(1, 10) / 10, atol=1.5e-3)
    assert value == pytest.approx(oracle_psi(reference, current, edges), rel=1e-12)


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    reference = rng.normal(size=20_000)
    assert profile_psi(reference, rng.normal(size=20_000))[0] < 0.01
    assert profile_psi(reference, rng.normal(1.0, 1, size=20_000))[0] > 0.5


@settings(max_examples=200, deadline=None)
@given(
    reference=st.lists(
        st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False), min_size=1, max_size=300
    ),
    current=st.lists(
        st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False), min_size=1, max_size=300
    ),
    bins=st.integers(2, 20),
)
def test_numeric_psi_matches_the_oracle_for_any_data(reference, current, bins) -> None:
    ref, cur = np.array(reference), np.array(current)
    value, edges = profile_psi(ref, cur, bins)
    assert value == pytest.approx(oracle_psi(ref, cur, edges), rel=1e-9, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(
    reference=st.lists(st.sampled_from("abcde"), min_size=1, max_size=200),
    current=st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=200),
)
def test_categorical_psi_matches_the_oracle(reference, current) -> None:
    ref = ReferenceProfile.build({"x": ("categorical", reference)}, len(reference)).features["x"]
    window = FeatureProfile.of(current, "categorical", ref.bins)
    score = DRIFT_TESTS["psi"].score(ref, window, 0.2)
    seen = sorted(set(reference))
    cur = pd.Series([v if v in seen else "<other>" for v in current])
    r = pd.Series(reference).value_counts(normalize=True).reindex([*seen, "<other>"], fill_value=0)
    c = cur.value_counts(normalize=True).reindex([*seen, "<other>"], fill_value=0)
    keep = (r > 0) | (c > 0)
    r, c = evidently_fill(r[keep].to_numpy()), evidently_fill(c[keep].to_numpy())
    oracle = float(np.sum(rel_entr(c, r) + rel_entr(r, c)))
    assert score.statistic == pytest.approx(oracle, rel=1e-9, abs=1e-12)


def test_booleans_from_json_and_csv_land_in_the_same_bins() -> None:
    ref = ReferenceProfile.build({"b": ("boolean", [True, False, True, True])}, 4).features["b"]
    assert ref.bins.categories == ("false", "true")
    current = FeatureProfile.of(["true", "false", "true", "true"], "boolean", ref.bins)
    assert DRIFT_TESTS["psi"].score(ref, current, 0.2).statistic == pytest.approx(0.0)


def test_empty_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="no finite values"):
        ReferenceProfile.build({"x": ("numeric", [])}, 0)
