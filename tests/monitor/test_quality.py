"""Data quality per window against the same counts computed with pandas, merging, and
the bounds on what a result names."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collectors.contract import ModelDescription
from monitor.score.quality import (
    DataQuality,
    FeatureQualityCounts,
    NewCategory,
    category_key,
)

MODEL = ModelDescription(
    name="m",
    task="binary",
    positive_class=1,
    features=[
        {"name": "income", "type": "numeric"},
        {"name": "region", "type": "categorical"},
        {"name": "member", "type": "boolean"},
    ],
)

# Values of every type the contract lets through, some missing, some of the wrong type.
anything = st.one_of(
    st.none(),
    st.just(math.nan),
    st.floats(-100, 100, allow_nan=False).map(lambda v: round(v, 1)),
    st.sampled_from([math.inf, -math.inf, 0.0, 1.0, 2.5]),
    st.integers(-100, 100),
    st.booleans(),
    st.sampled_from(["north", "south", "east", "west", "3", "1.5", ""]),
)
rows = st.lists(
    st.fixed_dictionaries(
        {}, optional={"income": anything, "region": anything, "member": anything}
    ),
    max_size=60,
)


def allowed(kind: str) -> Any:
    """The types each kind accepts, spelled with pandas' type tools (an independent
    formulation of the module's rule)."""

    def check(v: Any) -> bool:
        if kind == "numeric":
            return pd.api.types.is_number(v) and not pd.api.types.is_bool(v)
        if kind == "boolean":
            return pd.api.types.is_bool(v) or (pd.api.types.is_number(v) and v in (0, 1))
        if pd.api.types.is_float(v):
            return float(v).is_integer()
        return pd.api.types.is_bool(v) or pd.api.types.is_integer(v) or isinstance(v, str)

    return check


def column(frame: pd.DataFrame, name: str) -> pd.Series:
    if name not in frame:
        return pd.Series([None] * len(frame), dtype=object)
    return frame[name].astype(object)


@settings(max_examples=200, deadline=None)
@given(reference=rows, window=rows)
def test_counts_equal_pandas(reference, window) -> None:
    ref = pd.DataFrame.from_records(reference, columns=["income", "region", "member"])
    cur = pd.DataFrame.from_records(window, columns=["income", "region", "member"])
    fitted = DataQuality().fit(MODEL, {name: ref[name].tolist() for name in ref})
    result = fitted.score(window)
    assert result.rows == len(window)
    for spec in MODEL.features:
        ours = result.feature(spec.name)
        values = column(cur, spec.name)
        missing = values.isna()
        ok = values[~missing].map(allowed(spec.type)).astype(bool)
        assert ours.missing == int(missing.sum())
        assert ours.type_errors == int((~ok).sum())
        assert ours.valid == int(ok.sum())
        if len(window):
            assert ours.missing_share == pytest.approx(missing.mean(), rel=1e-15)
            assert ours.type_error_share == pytest.approx((~ok).sum() / len(window), rel=1e-15)
        else:
            assert ours.missing_share is None
        valid = values[~missing][ok]
        ref_values = column(ref, spec.name)
        ref_valid = ref_values[~ref_values.isna()]
        ref_valid = ref_valid[ref_valid.map(allowed(spec.type)).astype(bool)]
        if spec.type == "numeric":
            finite = pd.to_numeric(ref_valid, errors="raise").replace([np.inf, -np.inf], np.nan)
            if finite.notna().any() and len(valid):
                inside = pd.to_numeric(valid).between(finite.min(), finite.max())
                assert ours.out_of_range == int((~inside).sum())
                assert ours.out_of_range_share == pytest.approx((~inside).mean(), rel=1e-15)
            elif finite.notna().any():
                assert (ours.out_of_range, ours.out_of_range_share) == (0, None)
            else:
                assert ours.out_of_range == 0  # no reference range: nothing is judged
            assert ours.new_category_values is None
        elif spec.type == "categorical":
            if len(ref_valid) == 0:
                assert (ours.new_category_values, ours.new_categories) == (None, ())
                continue
            keys = valid.map(category_key)
            new = keys[~keys.isin(set(ref_valid.map(category_key)))]
            assert ours.new_category_values == len(new)
            assert ours.new_category_count == new.nunique()
            counts = new.value_counts()
            expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]
            assert ours.new_categories == tuple(NewCategory(k, n) for k, n in expected)
            if len(valid):
                assert ours.new_category_share == pytest.approx(len(new) / len(valid))
            assert ours.out_of_range is None
        else:
            assert ours.out_of_range is None and ours.new_category_values is None


def test_a_worked_window() -> None:
    reference = {
        "income": [10.0, 20, 30.5, None, math.inf],
        "region": ["north", "south", 3, None],
        "member": [True, False],
    }
    fitted = DataQuality(max_listed=2).fit(MODEL, reference)
    assert fitted.ranges == {"income": (10.0, 30.5)}
    assert fitted.categories == {"region": frozenset({"north", "south", "3"})}
    window = [
        {"income": 9.9, "region": "north", "member": True},
        {"income": "25", "region": "west", "member": 1},
        {"income": math.inf, "region": 3.0, "member": "yes"},
        {"income": 30.5, "region": "west"},
        {"region": "east", "member": 2},
        {"income": True, "region": 1.5, "member": None},
    ]
    result = fitted.score(window)
    income = result.feature("income")
    assert (income.missing, income.type_errors, income.valid, income.out_of_range) == (1, 2, 3, 2)
    assert income.out_of_range_share == pytest.approx(2 / 3)
    region = result.feature("region")
    assert (region.type_errors, region.valid, region.new_category_values) == (1, 5, 3)
    assert region.new_category_count == 2
    assert region.new_categories == (NewCategory("west", 2), NewCategory("east", 1))
    member = result.feature("member")
    assert (member.missing, member.type_errors, member.valid) == (2, 2, 2)
    assert member.missing_share == pytest.approx(2 / 6)


@settings(max_examples=100, deadline=None)
@given(reference=rows, window=rows, cut=st.floats(0, 1))
def test_counts_merge_to_the_whole_window(reference, window, cut) -> None:
    fitted = DataQuality().fit(
        MODEL, {s.name: [r.get(s.name) for r in reference] for s in MODEL.features}
    )
    k = int(cut * len(window))
    for name, kind in fitted.features:
        parts = [
            fitted.counts(name, kind, [r.get(name) for r in part])
            for part in (window[:k], window[k:])
        ]
        whole = fitted.counts(name, kind, [r.get(name) for r in window])
        assert FeatureQualityCounts().merge(parts[0]).merge(parts[1]) == whole


def test_new_categories_are_bounded() -> None:
    fitted = DataQuality(max_listed=3, max_tracked=5).fit(MODEL, {"region": ["a"]})
    window = [{"region": f"n{i}"} for i in range(8) for _ in range(i + 1)]
    region = fitted.score(window).feature("region")
    assert region.new_category_values == len(window)
    assert region.new_category_count == 5  # only the first five distinct ones are named
    assert [c.category for c in region.new_categories] == ["n4", "n3", "n2"]
    a = fitted.counts("region", "categorical", ["x1", "x2", "x3", "x4"])
    b = fitted.counts("region", "categorical", ["x5", "x6", "x1"])
    merged = a.merge(b, max_tracked=5)
    assert merged.untracked_new_categories and merged.new_category_values == 7
    assert merged.new_categories == {"x1": 2, "x2": 1, "x3": 1, "x4": 1, "x5": 1}


def test_too_many_reference_categories_are_not_judged() -> None:
    fitted = DataQuality(max_reference_categories=3).fit(MODEL, {"region": list("abcd")})
    region = fitted.score([{"region": "z"}]).feature("region")
    assert (region.new_category_values, region.new_category_share) == (None, None)


def test_columns_and_bad_input() -> None:
    fitted = DataQuality().fit(MODEL, {"income": [1.0, 2.0]})
    result = fitted.score_columns({"income": [0.0, 1.5]}, 2)
    assert result.feature("income").out_of_range == 1
    assert result.feature("region").missing == 2  # an absent column is missing
    assert result.feature("income").new_category_values is None
    with pytest.raises(ValueError, match="3 rows"):
        fitted.score_columns({"income": [1.0]}, 3)
    with pytest.raises(KeyError):
        result.feature("nope")
    with pytest.raises(ValueError, match="at least 1"):
        DataQuality(max_listed=0).fit(MODEL, {})
    empty = fitted.score([])
    assert empty.rows == 0 and empty.feature("income").missing_share is None
    assert [category_key(v) for v in (3, 3.0, "3", True, 2.5)] == ["3", "3", "3", "true", "2.5"]


def test_the_public_names_are_the_intended_ones() -> None:
    import monitor.score.quality as module

    assert sorted(module.__all__) == sorted(
        [
            "DEFAULT_MAX_LISTED", "DEFAULT_MAX_REFERENCE_CATEGORIES", "DEFAULT_MAX_TRACKED",
            "DataQuality", "DataQualityResult", "FeatureQuality", "FeatureQualityCounts",
            "FittedDataQuality", "NewCategory", "category_key",
        ]
    )  # fmt: skip
    assert all(hasattr(module, name) for name in module.__all__)
