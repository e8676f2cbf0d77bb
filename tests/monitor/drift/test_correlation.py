"""Correlation drift: Fisher's z against a hand computation on scipy's Pearson r, a flip
that no single feature shows, and the bound on pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from monitor.score.drift import (
    DRIFT_TESTS,
    CorrelationDrift,
    benjamini_hochberg,
    choose_test,
    dataset_drift,
    fisher_z,
)
from monitor.score.drift.correlation import CorrelationMoments


def correlated(rng: np.random.Generator, rho: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    x = rng.normal(size=n)
    return x, rho * x + math.sqrt(1 - rho**2) * rng.normal(size=n)


def test_each_pair_matches_pearsonr_and_the_fisher_formula() -> None:
    rng = np.random.default_rng(5)
    ref = dict(zip("ab", correlated(rng, 0.6, 400), strict=True)) | {"c": rng.normal(size=400)}
    cur = dict(zip("ab", correlated(rng, 0.3, 300), strict=True)) | {"c": rng.normal(size=300)}
    result = CorrelationDrift().fit(ref).score(cur)
    assert [(p.feature_a, p.feature_b) for p in result.pairs] == [
        ("a", "b"),
        ("a", "c"),
        ("b", "c"),
    ]
    for pair in result.pairs:
        r1 = stats.pearsonr(ref[pair.feature_a], ref[pair.feature_b]).statistic
        r2 = stats.pearsonr(cur[pair.feature_a], cur[pair.feature_b]).statistic
        z = (math.atanh(r1) - math.atanh(r2)) / math.sqrt(1 / (400 - 3) + 1 / (300 - 3))
        assert pair.reference_r == pytest.approx(r1, rel=1e-12)
        assert pair.current_r == pytest.approx(r2, rel=1e-12)
        assert pair.z == pytest.approx(z, rel=1e-9)
        assert pair.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    adjusted = stats.false_discovery_control([p.p_value for p in result.pairs])
    assert [p.adjusted_p_value for p in result.pairs] == pytest.approx(adjusted, rel=1e-12)
    assert result.drifted_pairs == (("a", "b"),)


@settings(max_examples=100, deadline=None)
@given(
    r1=st.floats(-0.999, 0.999),
    r2=st.floats(-0.999, 0.999),
    n1=st.integers(4, 10_000),
    n2=st.integers(4, 10_000),
)
def test_fisher_z_is_antisymmetric_with_a_symmetric_p_value(r1, r2, n1, n2) -> None:
    z12, p12 = fisher_z(r1, n1, r2, n2)
    z21, p21 = fisher_z(r2, n2, r1, n1)
    assert z12 == pytest.approx(-z21, abs=1e-12)
    assert p12 == pytest.approx(p21, rel=1e-9, abs=1e-300)
    assert 0 <= p12 <= 1


def test_a_flipped_correlation_is_caught_while_every_marginal_stays_put() -> None:
    rng = np.random.default_rng(2024)
    n, others = 1_000, 8
    ref = dict(zip(("x", "y"), correlated(rng, 0.8, n), strict=True))
    cur = dict(zip(("x", "y"), correlated(rng, -0.8, n), strict=True))
    for i in range(others):
        ref[f"f{i}"], cur[f"f{i}"] = rng.normal(size=n), rng.normal(size=n)
    # Univariate: the test Evidently would pick for each feature, then BH across them.
    scores = {}
    for name in ref:
        choice = choose_test("numeric", n, len(np.unique(np.concatenate([ref[name], cur[name]]))))
        assert choice.test.name == "ks"
        scores[name] = choice.test.fit(ref[name], choice.kind).score(cur[name])
    assert benjamini_hochberg({k: s.p_value for k, s in scores.items()}).rejected == ()
    assert not dataset_drift({k: s.drifted for k, s in scores.items()}).drifted
    # Even the distances stay under their thresholds.
    for name in ("x", "y"):
        assert not DRIFT_TESTS["wasserstein"].fit(ref[name], "numeric").score(cur[name]).drifted
    result = CorrelationDrift().fit(ref).score(cur)
    assert result.drifted_pairs == (("x", "y"),)
    flipped = result.pairs[0]
    assert flipped.reference_r > 0.75 and flipped.current_r < -0.75
    assert len(result.pairs) == (2 + others) * (1 + others) // 2


def test_pairs_beyond_the_bound_are_cut_and_counted() -> None:
    rng = np.random.default_rng(9)
    names = [f"f{i}" for i in range(12)]
    ref = {name: rng.normal(size=200) for name in names}
    ref["f3"] = np.full(200, 1.5)  # constant: no correlation to compare
    fitted = CorrelationDrift(max_features=5).fit(ref)
    assert fitted.features == ("f0", "f1", "f2", "f4", "f5")
    assert fitted.features_cut == ("f3", "f6", "f7", "f8", "f9", "f10", "f11")
    assert fitted.pairs_cut == 66 - 10
    result = fitted.score({name: rng.normal(size=150) for name in names})
    assert len(result.pairs) == 10 and result.pairs_cut == 56


def test_missing_rows_are_left_out_and_a_constant_window_is_undefined() -> None:
    rng = np.random.default_rng(1)
    a, b = correlated(rng, 0.5, 300)
    a[::10] = np.nan
    fitted = CorrelationDrift().fit({"a": a, "b": b})
    assert fitted.reference_count == 270
    result = fitted.score({"a": rng.normal(size=50), "b": np.zeros(50)})
    (pair,) = result.pairs
    assert math.isnan(pair.current_r)
    assert (pair.z, pair.p_value, pair.drifted) == (None, None, False)


def test_unusable_input_is_refused() -> None:
    with pytest.raises(ValueError, match="two features that vary"):
        CorrelationDrift().fit({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0] * 4})
    with pytest.raises(ValueError, match="at least 4 rows"):
        CorrelationDrift().fit({"a": [1.0, 2.0, 3.0], "b": [3.0, 1.0, 2.0]})
    with pytest.raises(ValueError, match="max_features"):
        CorrelationDrift(max_features=1).fit({"a": [1.0] * 5, "b": [2.0] * 5})
    fitted = CorrelationDrift().fit({"a": [1.0, 2.0, 3.0, 4.0], "b": [2.0, 1.0, 4.0, 3.0]})
    with pytest.raises(ValueError, match="lacks features"):
        fitted.score({"a": [1.0, 2.0, 3.0, 4.0]})
    with pytest.raises(ValueError, match="one value per row"):
        fitted.score({"a": [1.0, 2.0, 3.0, 4.0], "b": [1.0, 2.0]})


def test_spearman_pairs_match_spearmanr_and_the_fieller_variance() -> None:
    rng = np.random.default_rng(11)
    a, b = correlated(rng, 0.5, 500)
    ref = {"a": np.exp(a), "b": b**3}  # monotone transforms: Spearman's rho is unchanged
    c, d = correlated(rng, 0.2, 400)
    cur = {"a": c, "b": np.round(d, 1)}  # ties in the window
    result = CorrelationDrift(method="spearman").fit(ref).score(cur)
    (pair,) = result.pairs
    r1 = stats.spearmanr(ref["a"], ref["b"]).statistic
    r2 = stats.spearmanr(cur["a"], cur["b"]).statistic
    z = (math.atanh(r1) - math.atanh(r2)) / math.sqrt(1.06 / 497 + 1.06 / 397)
    assert (pair.reference_r, pair.current_r) == (
        pytest.approx(r1, rel=1e-12),
        pytest.approx(r2, rel=1e-12),
    )
    assert pair.z == pytest.approx(z, rel=1e-9)
    assert pair.p_value == pytest.approx(2 * stats.norm.sf(abs(z)), rel=1e-9)
    assert result.method == "spearman" and pair.drifted


def test_a_significant_but_small_change_is_not_drift() -> None:
    rng = np.random.default_rng(3)
    n = 200_000
    ref = dict(zip("ab", correlated(rng, 0.50, n), strict=True))
    cur = dict(zip("ab", correlated(rng, 0.53, n), strict=True))
    (pair,) = CorrelationDrift().fit(ref).score(cur).pairs
    assert pair.adjusted_p_value is not None and pair.adjusted_p_value < 1e-6
    assert not pair.drifted  # moved by about 0.03, under min_difference = 0.1
    (pair,) = CorrelationDrift(min_difference=0.01).fit(ref).score(cur).pairs
    assert pair.drifted


def test_a_feature_beyond_the_bound_cannot_break_the_fit() -> None:
    rng = np.random.default_rng(4)
    ref = {"a": rng.normal(size=50), "b": rng.normal(size=50), "gone": np.full(50, np.nan)}
    fitted = CorrelationDrift(max_features=2).fit(ref)
    assert fitted.features == ("a", "b") and fitted.reference_count == 50
    assert fitted.features_cut == ("gone",)
    with pytest.raises(ValueError, match="method"):
        CorrelationDrift(method="kendall").fit(ref)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="min_difference"):
        CorrelationDrift(min_difference=-0.1).fit(ref)


@settings(max_examples=100, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    rows=st.integers(4, 300),
    cuts=st.lists(st.floats(0, 1), max_size=4),
)
def test_moments_merged_from_any_split_score_as_the_rows_do(seed, rows, cuts) -> None:
    rng = np.random.default_rng(seed)
    names = ("a", "b", "c")
    ref = dict(zip(names, rng.normal(size=(3, 400)), strict=True))
    x = rng.normal(size=rows)
    cur = {"a": x, "b": -0.5 * x + rng.normal(size=rows), "c": rng.normal(size=rows) * 100 + 5}
    cur["c"][rng.random(rows) < 0.1] = np.nan  # incomplete rows drop out of both routes
    bounds = sorted({0, rows, *(int(c * rows) for c in cuts)})
    merged = CorrelationMoments.zero(names)
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        merged = merged.merge(CorrelationMoments.of({n: v[lo:hi] for n, v in cur.items()}, names))
    complete = np.isfinite(cur["c"])
    assert merged.count == int(complete.sum())
    if merged.count < 4:
        return
    expected = np.corrcoef(np.vstack([cur[n][complete] for n in names]))
    np.testing.assert_allclose(merged.correlation(), expected, rtol=0, atol=1e-12)
    fitted = CorrelationDrift().fit(ref)
    by_rows, by_moments = fitted.score(cur), fitted.score_moments(merged)
    assert by_moments.current_count == by_rows.current_count
    for ours, theirs in zip(by_moments.pairs, by_rows.pairs, strict=True):
        assert ours.current_r == pytest.approx(theirs.current_r, abs=1e-12)
        assert ours.p_value == pytest.approx(theirs.p_value, rel=1e-9, abs=1e-300)
        assert ours.drifted == theirs.drifted


def test_moments_refuse_what_cannot_be_scored() -> None:
    fitted = CorrelationDrift(method="spearman").fit({"a": [1.0, 2, 3, 4], "b": [2.0, 1, 4, 3]})
    moments = CorrelationMoments.of({"a": [1.0, 2, 3, 4], "b": [1.0, 2, 3, 5]}, ("a", "b"))
    with pytest.raises(ValueError, match="Pearson"):
        fitted.score_moments(moments)
    pearson = CorrelationDrift().fit({"a": [1.0, 2, 3, 4], "b": [2.0, 1, 4, 3]})
    with pytest.raises(ValueError, match="lacks features"):
        pearson.score_moments(CorrelationMoments.zero(("a",)))
    with pytest.raises(ValueError, match="at least 4 rows"):
        pearson.score_moments(CorrelationMoments.zero(("a", "b")))
    with pytest.raises(ValueError, match="different features"):
        moments.merge(CorrelationMoments.zero(("b", "a")))


def test_benjamini_yekutieli_adjusts_the_pairs_as_scipy_does() -> None:
    rng = np.random.default_rng(6)
    ref = {f"f{i}": rng.normal(size=300) for i in range(6)}
    cur = {f"f{i}": rng.normal(size=200) for i in range(6)}
    cur["f1"] = cur["f0"] * 0.5 + rng.normal(size=200)
    result = CorrelationDrift(fdr_method="by").fit(ref).score(cur)
    expected = stats.false_discovery_control([p.p_value for p in result.pairs], method="by")
    assert [p.adjusted_p_value for p in result.pairs] == pytest.approx(expected, rel=1e-13)
    assert result.drifted_pairs == (("f0", "f1"),)
    with pytest.raises(ValueError, match="fdr_method"):
        CorrelationDrift(fdr_method="holm").fit(ref)  # type: ignore[arg-type]
