"""Benjamini-Hochberg against scipy, the false-alarm rate it promises, and the dataset
verdict."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from monitor.score.drift import (
    adjust_bh,
    benjamini_hochberg,
    dataset_drift,
)
from monitor.score.drift.multiple import adjust_by

p_values = st.lists(
    st.one_of(st.floats(0, 1), st.sampled_from([0.0, 0.01, 0.05, 1.0])), min_size=1, max_size=60
)


@settings(max_examples=300, deadline=None)
@given(p=p_values)
def test_adjusted_p_values_equal_scipys(p) -> None:
    np.testing.assert_allclose(
        adjust_bh(p), stats.false_discovery_control(p, method="bh"), rtol=1e-15, atol=0
    )


@settings(max_examples=300, deadline=None)
@given(p=p_values, q=st.sampled_from([0.01, 0.05, 0.1, 0.2]))
def test_benjamini_yekutieli_equals_scipys(p, q) -> None:
    np.testing.assert_allclose(
        adjust_by(p), stats.false_discovery_control(p, method="by"), rtol=1e-13, atol=0
    )
    by = benjamini_hochberg({f"f{i}": v for i, v in enumerate(p)}, fdr=q, method="by")
    bh = benjamini_hochberg({f"f{i}": v for i, v in enumerate(p)}, fdr=q)
    assert set(by.rejected) <= set(bh.rejected)  # BY is the stricter of the two


@settings(max_examples=300, deadline=None)
@given(p=p_values, q=st.sampled_from([0.01, 0.05, 0.1, 0.2]))
def test_rejections_follow_the_step_up_rule(p, q) -> None:
    # Reject the k smallest p-values, k the largest rank with p_(k) <= k q / m.
    m = len(p)
    ranked = sorted(p)
    k = max((i for i in range(1, m + 1) if ranked[i - 1] <= i * q / m), default=0)
    expected = {f"f{i}" for i, value in enumerate(p) if k and value <= ranked[k - 1]}
    result = benjamini_hochberg({f"f{i}": value for i, value in enumerate(p)}, fdr=q)
    assert set(result.rejected) == expected
    assert [r.p_value for r in result.results] == p


def test_invalid_input_is_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_bh([0.1, np.nan])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        adjust_bh([1.5])
    with pytest.raises(ValueError, match="fdr"):
        benjamini_hochberg({"a": 0.1}, fdr=0)
    with pytest.raises(ValueError, match="valid methods: bh, by"):
        benjamini_hochberg({"a": 0.1}, method="holm")  # type: ignore[arg-type]
    assert benjamini_hochberg({}).rejected == ()


# The false-alarm rate over many windows: tests/monitor/test_false_alarms.py.


def test_the_dataset_drifts_when_half_its_features_do() -> None:
    half = dataset_drift({"a": True, "b": False, "c": True, "d": False})
    assert (half.share, half.drifted, half.drifted_features) == (0.5, True, ("a", "c"))
    assert not dataset_drift({"a": True, "b": False, "c": False}).drifted
    assert dataset_drift({"a": True, "b": False, "c": False}, drift_share=1 / 3).drifted
    with pytest.raises(ValueError, match="at least one feature"):
        dataset_drift({})
    with pytest.raises(ValueError, match="drift_share"):
        dataset_drift({"a": True}, drift_share=1.5)
