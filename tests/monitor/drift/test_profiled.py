"""Drift tests from profiles against the exact tests on the raw values.

Each test from profiles is checked against an independent oracle on the raw data
(scipy, Evidently 0.7) within the bound the test states for itself
(:mod:`monitor.score.drift.profiled`): KS and Wasserstein within their reported
``error_bound``, chi-squared and Z exactly, PSI, Jensen-Shannon and Hellinger exactly
on their bins.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from monitor.core.profile import FeatureProfile, ReferenceProfile, coarse_edges
from monitor.score.drift import DRIFT_TESTS
from monitor.score.drift.profiled import counted_by_value, ks_asymptotic_p


def profiles(reference, current, kind: str = "numeric", fine: int = 1000):
    ref = ReferenceProfile.build({"x": (kind, reference)}, len(reference), fine).features["x"]
    return ref, FeatureProfile.of(current, kind, ref.bins)


samples = st.sampled_from(["normal", "shifted", "lognormal", "integers", "mixture"])


def draw(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "normal":
        return rng.normal(0, 1, n)
    if kind == "shifted":
        return rng.normal(0.3, 1.5, n)
    if kind == "lognormal":
        return rng.lognormal(0, 1, n)
    if kind == "integers":
        return rng.integers(0, 40, n).astype(float)
    return np.where(rng.random(n) < 0.3, rng.normal(-3, 0.2, n), rng.exponential(2, n))


@settings(max_examples=60, deadline=None)
@given(
    ref_kind=samples,
    cur_kind=samples,
    n_ref=st.integers(20, 5000),
    n_cur=st.integers(20, 5000),
    fine=st.sampled_from([10, 100, 1000]),
    seed=st.integers(0, 2**31),
)
def test_ks_statistic_and_p_value_lie_within_the_stated_bound(
    ref_kind, cur_kind, n_ref, n_cur, fine, seed
) -> None:
    reference, current = draw(ref_kind, n_ref, seed), draw(cur_kind, n_cur, seed + 1)
    ref, cur = profiles(reference, current, fine=fine)
    score = DRIFT_TESTS["ks"].score(ref, cur, 0.05)
    exact = stats.ks_2samp(reference, current, method="asymp")
    low, high = score.statistic, score.statistic + score.error_bound
    assert low - 1e-12 <= exact.statistic <= high + 1e-12
    # The p-value is scipy's asymptotic one at the lower bound: no smaller than scipy's.
    assert ks_asymptotic_p(high, n_ref, n_cur) - 1e-12 <= exact.pvalue <= score.p_value + 1e-12
    # The bound is at most one bin's share of either sample.
    shares = np.maximum(ref.profile.histogram / n_ref, cur.histogram / n_cur)
    assert score.error_bound <= shares.max() + 1e-12


def test_ks_on_large_samples_is_within_a_thousandth_of_scipy() -> None:
    reference, current = draw("normal", 200_000, 1), draw("shifted", 100_000, 2)
    ref, cur = profiles(reference, current)
    score = DRIFT_TESTS["ks"].score(ref, cur, 0.05)
    exact = stats.ks_2samp(reference, current)
    assert score.statistic <= exact.statistic <= score.statistic + score.error_bound
    assert score.error_bound < 3e-3
    assert exact.statistic - score.statistic < 1e-3


@settings(max_examples=60, deadline=None)
@given(
    ref_kind=samples,
    cur_kind=samples,
    n_ref=st.integers(2, 5000),
    n_cur=st.integers(2, 5000),
    fine=st.sampled_from([10, 100, 1000]),
    seed=st.integers(0, 2**31),
)
def test_wasserstein_lies_within_the_stated_bound(
    ref_kind, cur_kind, n_ref, n_cur, fine, seed
) -> None:
    reference, current = draw(ref_kind, n_ref, seed), draw(cur_kind, n_cur, seed + 1)
    ref, cur = profiles(reference, current, fine=fine)
    score = DRIFT_TESTS["wasserstein"].score(ref, cur, 0.1)
    scale = max(float(np.std(reference)), 0.001)
    exact = stats.wasserstein_distance(reference, current) / scale
    # A lower bound, and the exact value within the stated bound above it.
    rounding = 1e-12 * max(1, exact)
    assert score.statistic - rounding <= exact
    assert exact <= score.statistic + score.error_bound * (1 + 1e-9) + rounding


def test_wasserstein_agrees_with_evidently_on_a_large_window(evidently) -> None:
    reference = np.random.default_rng(1).lognormal(0, 1, 200_000)
    current = np.random.default_rng(2).lognormal(0, 1, 100_000) * 1.05
    ref, cur = profiles(reference, current)
    score = DRIFT_TESTS["wasserstein"].score(ref, cur, 0.1)
    theirs, drifted = evidently.run("wasserstein", reference, current, "numeric", 0.1)
    assert abs(score.statistic - float(theirs)) <= score.error_bound
    # Exact but for bins where the two CDFs cross; here (0.0438) off by 1.3e-4, a
    # hundredth of the threshold, while the worst case over those bins is 0.015.
    assert abs(score.statistic - float(theirs)) < 2e-4
    assert score.error_bound < 0.02
    assert score.drifted == bool(drifted)


def test_wasserstein_without_crossings_is_exact() -> None:
    reference, current = draw("normal", 100_000, 1), draw("normal", 50_000, 2) + 1.0
    ref, cur = profiles(reference, current)
    score = DRIFT_TESTS["wasserstein"].score(ref, cur, 0.1)
    exact = stats.wasserstein_distance(reference, current) / np.std(reference)
    assert score.statistic == pytest.approx(exact, rel=1e-12)
    assert score.error_bound == 0.0


@settings(max_examples=150, deadline=None)
@given(
    reference=st.lists(st.sampled_from(["a", "b", "c", "d"]), min_size=1, max_size=300),
    current=st.lists(st.sampled_from(["a", "b", "c", "d", "e", "f"]), min_size=1, max_size=300),
)
def test_chisquare_and_z_equal_the_raw_tests(reference, current) -> None:
    ref, cur = profiles(reference, current, "categorical")
    # Z: exact while the window's values are the reference's (a new value lands in
    # the "other" bin, whose place in the order of values is not kept).
    names = ["chisquare", "z"] if set(current) <= set(reference) else ["chisquare"]
    for name in names:
        ours = DRIFT_TESTS[name].score(ref, cur, 0.05)
        raw = DRIFT_TESTS[name].fit(reference, "categorical").score(current)
        assert ours.statistic == pytest.approx(raw.statistic, rel=1e-12, abs=1e-300)
        assert ours.p_value == pytest.approx(raw.p_value, rel=1e-12, abs=1e-300)
        assert ours.drifted == raw.drifted


def test_chisquare_equals_scipy_and_evidently(evidently) -> None:
    rng = np.random.default_rng(8)
    reference = rng.choice(["a", "b", "c"], 900, p=[0.5, 0.3, 0.2])
    current = rng.choice(["a", "b", "c"], 400, p=[0.45, 0.3, 0.25])
    ref, cur = profiles(reference, current, "categorical")
    ours = DRIFT_TESTS["chisquare"].score(ref, cur, 0.05)
    observed = pd.Series(current).value_counts().reindex(["a", "b", "c"]).to_numpy()
    expected = pd.Series(reference).value_counts(normalize=True).reindex(["a", "b", "c"]) * 400
    scipy_result = stats.chisquare(observed, expected.to_numpy())
    assert ours.p_value == pytest.approx(scipy_result.pvalue, rel=1e-12)
    theirs, _ = evidently.run("chisquare", reference, current, "categorical", 0.05)
    assert ours.p_value == pytest.approx(float(theirs), rel=1e-12)


def test_z_on_booleans_equals_evidently(evidently) -> None:
    rng = np.random.default_rng(3)
    reference, current = rng.random(800) < 0.4, rng.random(300) < 0.5
    ref, cur = profiles(reference, current, "boolean")
    ours = DRIFT_TESTS["z"].score(ref, cur, 0.05)
    theirs, drifted = evidently.run("z", reference, current, "categorical", 0.05)
    assert ours.p_value == pytest.approx(float(theirs), rel=1e-9, abs=2.3e-16)
    assert ours.drifted == bool(drifted)


@settings(max_examples=100, deadline=None)
@given(
    ref_kind=samples,
    cur_kind=samples,
    n_ref=st.integers(1, 3000),
    n_cur=st.integers(1, 3000),
    coarse=st.integers(2, 20),
    seed=st.integers(0, 2**31),
)
def test_js_and_hellinger_equal_scipy_on_their_bins(
    ref_kind, cur_kind, n_ref, n_cur, coarse, seed
) -> None:
    reference, current = draw(ref_kind, n_ref, seed), draw(cur_kind, n_cur, seed + 1)
    ref, cur = profiles(reference, current)
    # At most five distinct values: counted value by value (Evidently's categories).
    inner = (
        ref.bins.edges
        if counted_by_value(ref)
        else coarse_edges(ref.bins, ref.profile.histogram, coarse)
    )
    edges = [-np.inf, *inner.tolist(), np.inf]
    r = np.bincount(pd.cut(reference, edges, labels=False), minlength=len(edges) - 1)
    c = np.bincount(pd.cut(current, edges, labels=False), minlength=len(edges) - 1)
    p, q = r / r.sum(), c / c.sum()
    js = DRIFT_TESTS["jensenshannon"].score(ref, cur, 0.1, coarse)
    assert js.statistic == pytest.approx(jensenshannon(p, q), rel=1e-9, abs=1e-12)
    hellinger = DRIFT_TESTS["hellinger"].score(ref, cur, 0.1, coarse)
    oracle = np.sqrt(0.5 * np.sum((np.sqrt(p) - np.sqrt(q)) ** 2))
    assert hellinger.statistic == pytest.approx(oracle, rel=1e-9, abs=1e-12)


def test_a_window_on_other_bins_or_without_values_is_refused() -> None:
    ref, _ = profiles(draw("normal", 100, 1), draw("normal", 10, 2))
    with pytest.raises(ValueError, match="bins"):
        DRIFT_TESTS["ks"].score(ref, FeatureProfile.of([1.0], "numeric", None), 0.05)
    with pytest.raises(ValueError, match="no values"):
        DRIFT_TESTS["ks"].score(ref, FeatureProfile.zero(ref.bins), 0.05)
