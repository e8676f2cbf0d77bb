"""Each drift test against scipy (or numpy) computing the same statistic, and properties
that hold for any data."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial import distance
from scipy.special import rel_entr

from monitor.score.drift import DRIFT_TESTS, DriftScore
from tests.monitor.drift.cases import CASES, Case, clean


def oracle_shares(ref: pd.Series, cur: pd.Series, numeric: bool, union_bins: bool = False):
    """Shares per bin with numpy's own Sturges bins, or per distinct value with pandas."""
    if numeric and (union_bins or ref.nunique() > 20):
        basis = np.union1d(ref, cur) if union_bins else np.concatenate([ref, cur])
        edges = np.histogram_bin_edges(basis, bins="sturges")
        return np.histogram(ref, edges)[0] / len(ref), np.histogram(cur, edges)[0] / len(cur)
    keys = pd.Index(ref.unique()).union(pd.Index(cur.unique()))
    r = ref.value_counts().reindex(keys, fill_value=0).to_numpy() / len(ref)
    c = cur.value_counts().reindex(keys, fill_value=0).to_numpy() / len(cur)
    return r, c


def filled(shares: np.ndarray) -> np.ndarray:
    smallest = shares[shares > 0].min()
    return np.where(shares == 0, smallest / 1e6 if smallest <= 1e-4 else 1e-4, shares)


def oracle(name: str, ref: pd.Series, cur: pd.Series, kind: str) -> tuple[float, float | None]:
    """(statistic, p-value) computed by scipy and numpy directly."""
    numeric = kind == "numeric"
    if name == "ks":
        result = stats.ks_2samp(ref, cur)
        return result.statistic, result.pvalue
    if name == "chisquare":
        r, c = oracle_shares(ref, cur, numeric=False)
        with warnings.catch_warnings():  # a new category: division by zero, inf
            warnings.simplefilter("ignore")
            result = stats.chisquare(c * len(cur), r * len(cur))
        return result.statistic, result.pvalue
    if name == "z":
        first = min(set(ref) | set(cur))
        x1, x2 = (ref != first).sum(), (cur != first).sum()
        n1, n2 = len(ref), len(cur)
        pooled = (x1 + x2) / (n1 + n2)
        z = (x1 / n1 - x2 / n2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        return z, 2 * stats.norm.sf(abs(z))
    if name == "psi":
        r, c = map(filled, oracle_shares(ref, cur, numeric))
        return float(np.sum(rel_entr(r, c) + rel_entr(c, r))), None
    if name == "jensenshannon":
        return distance.jensenshannon(*oracle_shares(ref, cur, numeric)), None
    if name == "wasserstein":
        return stats.wasserstein_distance(ref, cur) / max(np.std(ref.to_numpy()), 0.001), None
    r, c = oracle_shares(ref, cur, numeric, union_bins=True)
    return distance.euclidean(np.sqrt(r), np.sqrt(c)) / math.sqrt(2), None


PAIRS = [
    pytest.param(name, case, id=f"{name}-{case.id}")
    for name, test in sorted(DRIFT_TESTS.items())
    for case in CASES
    if case.kind in test.kinds
]


@pytest.mark.parametrize(("name", "case"), PAIRS)
def test_statistic_and_p_value_match_scipy(name: str, case: Case) -> None:
    ours = DRIFT_TESTS[name].fit(case.reference, case.kind).score(case.current)
    ref, cur = clean(case.reference), clean(case.current)
    statistic, p_value = oracle(name, ref, cur, case.kind)
    assert ours.statistic == pytest.approx(statistic, rel=1e-12, abs=1e-15)
    if p_value is None:
        assert ours.p_value is None
    else:
        assert ours.p_value == pytest.approx(p_value, rel=1e-12, abs=1e-300)
    assert (ours.reference_count, ours.current_count) == (len(ref), len(cur))


def test_ks_on_large_samples_uses_the_asymptotic_p_value_as_scipy_does() -> None:
    rng = np.random.default_rng(3)
    reference, current = rng.normal(size=30_000), rng.normal(0.01, 1, 25_000)
    ours = DRIFT_TESTS["ks"].fit(reference, "numeric").score(current)
    theirs = stats.ks_2samp(reference, current, method="asymp")
    assert ours.statistic == theirs.statistic
    assert ours.p_value == pytest.approx(theirs.pvalue, rel=1e-14)


values = st.lists(st.integers(-2_000, 2_000).map(lambda i: i / 4), min_size=1, max_size=80)
labels = st.lists(st.sampled_from(["x", "y", "z"]), min_size=1, max_size=80)
flags = st.lists(st.booleans(), min_size=1, max_size=80)


def all_scores(reference, current, kind: str) -> list[DriftScore]:
    return [
        test.fit(reference, kind).score(current)
        for test in DRIFT_TESTS.values()
        if kind in test.kinds
    ]


@settings(max_examples=80, deadline=None)
@given(
    data=st.one_of(
        st.tuples(st.just("numeric"), values, values),
        st.tuples(st.just("categorical"), labels, labels),
        st.tuples(st.just("boolean"), flags, flags),
    )
)
def test_scores_lie_in_their_ranges(data) -> None:
    kind, reference, current = data
    for score in all_scores(reference, current, kind):
        if score.p_value is not None:
            assert 0.0 <= score.p_value <= 1.0
        else:
            assert score.statistic >= 0.0
        if score.test == "jensenshannon":
            assert score.statistic <= math.sqrt(math.log(2)) + 1e-15
        if score.test == "hellinger":
            assert score.statistic <= 1.0
        assert score.drifted == (
            score.p_value <= score.threshold
            if score.test == "ks"
            else score.p_value < score.threshold
            if score.p_value is not None
            else score.statistic >= score.threshold
        )


@settings(max_examples=60, deadline=None)
@given(
    data=st.one_of(
        st.tuples(st.just("numeric"), values),
        st.tuples(st.just("categorical"), labels),
        st.tuples(st.just("boolean"), flags),
    )
)
def test_identical_samples_never_drift(data) -> None:
    kind, sample = data
    for score in all_scores(sample, list(sample), kind):
        assert not score.drifted
        assert score.p_value == 1.0 if score.p_value is not None else score.statistic == 0.0


@settings(max_examples=60, deadline=None)
@given(a=values, b=values)
def test_symmetric_statistics_are_symmetric(a, b) -> None:
    for name in ("ks", "hellinger"):
        ab = DRIFT_TESTS[name].fit(a, "numeric").score(b)
        ba = DRIFT_TESTS[name].fit(b, "numeric").score(a)
        assert ab.statistic == pytest.approx(ba.statistic, rel=1e-12, abs=1e-15), name
        assert ab.p_value == (None if ab.p_value is None else pytest.approx(ba.p_value, rel=1e-12))
    wasserstein = DRIFT_TESTS["wasserstein"]
    ab, ba = wasserstein.fit(a, "numeric").score(b), wasserstein.fit(b, "numeric").score(a)
    scale_a, scale_b = max(np.std(a), 0.001), max(np.std(b), 0.001)
    assert ab.statistic * scale_a == pytest.approx(ba.statistic * scale_b, rel=1e-9, abs=1e-12)


@settings(max_examples=60, deadline=None)
@given(a=flags, b=flags)
def test_z_is_antisymmetric_and_its_p_value_symmetric(a, b) -> None:
    ab = DRIFT_TESTS["z"].fit(a, "boolean").score(b)
    ba = DRIFT_TESTS["z"].fit(b, "boolean").score(a)
    assert ab.statistic == pytest.approx(-ba.statistic, rel=1e-12, abs=1e-15)
    assert ab.p_value == pytest.approx(ba.p_value, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(a=values, b=values, scale=st.integers(-6, 6), shift=st.integers(-100, 100))
def test_normalised_wasserstein_ignores_the_unit_and_ks_any_monotone_map(a, b, scale, shift):
    a, b = np.array(a), np.array(b)
    spread_ok = np.std(a) * 2.0**scale > 0.001 and np.std(a) > 0.001
    wasserstein = DRIFT_TESTS["wasserstein"]
    if spread_ok:
        plain = wasserstein.fit(a, "numeric").score(b).statistic
        moved = (
            wasserstein.fit(a * 2.0**scale + shift, "numeric")
            .score(b * 2.0**scale + shift)
            .statistic
        )
        assert moved == pytest.approx(plain, rel=1e-9, abs=1e-12)
    ks = DRIFT_TESTS["ks"]
    assert ks.fit(np.exp(a / 500), "numeric").score(np.exp(b / 500)) == ks.fit(a, "numeric").score(
        b
    )


def test_a_clear_shift_drifts_in_every_numeric_test() -> None:
    rng = np.random.default_rng(11)
    reference, current = rng.normal(size=2_000), rng.normal(1.0, 1, 2_000)
    for name in ("ks", "psi", "jensenshannon", "wasserstein", "hellinger"):
        assert DRIFT_TESTS[name].fit(reference, "numeric").score(current).drifted, name


@pytest.mark.parametrize(
    ("name", "reference", "kind", "message"),
    [
        ("ks", [], "numeric", "no finite value"),
        ("ks", [np.nan, np.inf], "numeric", "no finite value"),
        ("ks", ["a", "b"], "numeric", "must hold numbers"),
        ("ks", [1.0, 2.0], "categorical", "applies to numeric"),
        ("wasserstein", [1.0, 2.0], "boolean", "applies to numeric"),
        ("chisquare", [1.0, 2.0], "numeric", "applies to boolean, categorical"),
        ("psi", [None, None], "categorical", "no non-missing value"),
    ],
)
def test_unusable_references_are_refused(name, reference, kind, message) -> None:
    with pytest.raises(ValueError, match=message):
        DRIFT_TESTS[name].fit(reference, kind)


def test_an_empty_window_and_a_bad_threshold_are_refused() -> None:
    fitted = DRIFT_TESTS["psi"].fit([1.0, 2.0, 3.0], "numeric")
    with pytest.raises(ValueError, match="current window has no finite value"):
        fitted.score([np.nan])
    with pytest.raises(ValueError, match="finite number >= 0"):
        DRIFT_TESTS["psi"].fit([1.0], "numeric", threshold=-0.1)
    with pytest.raises(ValueError, match="finite number >= 0"):
        DRIFT_TESTS["ks"].fit([1.0], "numeric", threshold=math.nan)
