"""PSI against an independent computation: pandas binning and scipy's relative entropy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import rel_entr

from monitor.score.psi import EMPTY_BIN_SHARE, fit_psi, psi


def oracle_psi(reference: np.ndarray, current: np.ndarray, edges: list[float]) -> float:
    """PSI as the symmetric Kullback-Leibler divergence, on bins cut by pandas."""
    cuts = [-np.inf, *edges, np.inf]
    n_bins = len(cuts) - 1
    r = np.bincount(pd.cut(reference, cuts, right=True, labels=False), minlength=n_bins)
    c = np.bincount(pd.cut(current, cuts, right=True, labels=False), minlength=n_bins)
    r, c = r / r.sum(), c / c.sum()
    r = np.where(r == 0, EMPTY_BIN_SHARE, r)
    c = np.where(c == 0, EMPTY_BIN_SHARE, c)
    return float(np.sum(rel_entr(c, r) + rel_entr(r, c)))


def test_numeric_psi_matches_the_oracle_on_decile_bins() -> None:
    rng = np.random.default_rng(7)
    reference = rng.normal(0, 1, 5000)
    current = rng.normal(0.5, 1.2, 3000)
    fitted = fit_psi(reference, "numeric", 10)
    expected_edges = np.quantile(reference, np.arange(1, 10) / 10)
    np.testing.assert_allclose(fitted.edges, expected_edges, rtol=0, atol=0)
    np.testing.assert_allclose(fitted.shares, np.full(10, 0.1), atol=1e-12)
    assert fitted.score(current) == pytest.approx(
        oracle_psi(reference, current, list(fitted.edges)), rel=1e-12
    )


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(1)
    fitted = fit_psi(rng.normal(size=20_000), "numeric", 10)
    assert fitted.score(rng.normal(size=20_000)) < 0.01
    assert fitted.score(rng.normal(1.0, 1, size=20_000)) > 0.5


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
    fitted = fit_psi(ref, "numeric", bins)
    assert fitted.score(cur) == pytest.approx(
        oracle_psi(ref, cur, list(fitted.edges)), rel=1e-9, abs=1e-12
    )


@settings(max_examples=200, deadline=None)
@given(
    reference=st.lists(st.sampled_from("abcde"), min_size=1, max_size=200),
    current=st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=200),
)
def test_categorical_psi_matches_the_oracle(reference, current) -> None:
    fitted = fit_psi(reference, "categorical", 10)
    seen = sorted(set(reference))
    r = pd.Series(reference).value_counts(normalize=True).reindex(seen, fill_value=0).to_numpy()
    cur = pd.Series([v if v in seen else "<other>" for v in current])
    c = cur.value_counts(normalize=True).reindex([*seen, "<other>"], fill_value=0).to_numpy()
    expected = psi(np.append(r, 0.0), c)
    shares_r = np.where(np.append(r, 0.0) == 0, EMPTY_BIN_SHARE, np.append(r, 0.0))
    shares_c = np.where(c == 0, EMPTY_BIN_SHARE, c)
    oracle = float(np.sum(rel_entr(shares_c, shares_r) + rel_entr(shares_r, shares_c)))
    assert fitted.score(current) == pytest.approx(oracle, rel=1e-9, abs=1e-12)
    assert expected == pytest.approx(oracle, rel=1e-9, abs=1e-12)


def test_booleans_from_json_and_csv_land_in_the_same_bins() -> None:
    fitted = fit_psi([True, False, True, True], "boolean", 10)
    assert fitted.categories == ("false", "true")
    assert fitted.score(["true", "false", "true", "true"]) == pytest.approx(0.0)


def test_fitted_bins_survive_their_stored_form() -> None:
    rng = np.random.default_rng(3)
    fitted = fit_psi(rng.exponential(size=1000), "numeric", 10)
    again = type(fitted).from_json(fitted.as_json())
    assert again == fitted
    current = rng.exponential(2, size=500)
    assert again.score(current) == fitted.score(current)


def test_empty_reference_is_refused() -> None:
    with pytest.raises(ValueError, match="no values"):
        fit_psi([], "numeric", 10)
