"""Profiles: merged from any split they equal the profile of the whole; stored at ingest
in the same transaction as the rows; rebuilt when the reference's bins change."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from monitor.core.profile import (
    FINE_BINS,
    FeatureBins,
    FeatureProfile,
    ReferenceProfile,
    fit_bins,
    profile_rows,
)
from tests.conftest import credit_event

EPS = np.finfo(float).eps

numbers = st.one_of(
    st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False),
    st.integers(-1000, 1000),
    st.none(),
)


def assert_same(merged: FeatureProfile, whole: FeatureProfile, values: list) -> None:
    """Counts, histograms, min and max exactly; moments to 1e-9 relative.

    The absolute allowance is floating-point rounding at the data's magnitude (a few
    hundred ulps of ``max |x|``), which matters only where the spread is far below it.
    """
    assert (merged.count, merged.missing) == (whole.count, whole.missing)
    np.testing.assert_array_equal(merged.histogram, whole.histogram)
    if whole.count == 0 or math.isnan(whole.mean):  # no values, or not numeric
        assert math.isnan(merged.mean) and math.isnan(merged.minimum)
        return
    assert (merged.minimum, merged.maximum) == (whole.minimum, whole.maximum)
    scale = max(abs(v) for v in values if v is not None)
    # Per-bin sums of offsets from the bin's anchor: rounding at the offsets' magnitude.
    assert merged.offsets.shape == whole.offsets.shape
    reach = np.abs(whole.offsets).max(initial=0.0) + 1.0
    np.testing.assert_allclose(merged.offsets, whole.offsets, rtol=1e-9, atol=64 * EPS * reach)
    assert merged.mean == pytest.approx(whole.mean, rel=1e-9, abs=256 * EPS * scale)
    spread = math.sqrt(whole.m2 / whole.count)
    allowance = 256 * EPS * whole.count * scale * (spread + 256 * EPS * scale)
    assert merged.m2 == pytest.approx(whole.m2, rel=1e-9, abs=allowance)


def split(values: list, cuts: list[int]) -> list[list]:
    points = sorted({c % (len(values) + 1) for c in cuts})
    bounds = [0, *points, len(values)]
    return [values[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


@settings(max_examples=300, deadline=None)
@given(
    reference=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=60),
    values=st.lists(numbers, max_size=200),
    cuts=st.lists(st.integers(0, 10_000), max_size=8),
    fine=st.sampled_from([4, 16, FINE_BINS]),
    tree=st.booleans(),
)
def test_numeric_profile_merged_from_any_split_is_the_whole(
    reference, values, cuts, fine, tree
) -> None:
    bins = fit_bins(reference, "numeric", fine)
    parts = [FeatureProfile.of(p, "numeric", bins) for p in split(values, cuts)]
    if tree:  # merge pairwise, as parallel workers would
        while len(parts) > 1:
            parts = [
                parts[i].merge(parts[i + 1]) if i + 1 < len(parts) else parts[i]
                for i in range(0, len(parts), 2)
            ]
        merged = parts[0]
    else:
        merged = FeatureProfile.zero(bins)
        for p in parts:
            merged = merged.merge(p)
    whole = FeatureProfile.of(values, "numeric", bins)
    assert_same(merged, whole, values)
    again = FeatureProfile.from_bytes(merged.to_bytes())
    assert_same(again, merged, values)
    # The oracle for the whole: numpy on the finite values, pandas for the bins.
    finite = np.array([v for v in values if v is not None], dtype=float)
    assert whole.count == finite.size and whole.missing == len(values) - finite.size
    if finite.size:
        assert whole.mean == pytest.approx(finite.mean(), rel=1e-12, abs=1e-12)
        assert whole.m2 / whole.count == pytest.approx(finite.var(), rel=1e-9, abs=1e-9)
        cuts_ = [-np.inf, *bins.edges.tolist(), np.inf]
        counted = pd.cut(finite, cuts_, right=True, labels=False)
        np.testing.assert_array_equal(
            whole.histogram, np.bincount(counted.astype(int), minlength=bins.size)
        )
        anchors = np.concatenate(([bins.edges[0]], bins.edges))
        offsets = [
            (finite[counted == i] - anchors[i]).sum() if (counted == i).any() else 0.0
            for i in range(bins.size)
        ]
        np.testing.assert_allclose(whole.offsets, offsets, rtol=1e-9, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(
    reference=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=60),
    columns=st.lists(st.lists(numbers, min_size=30, max_size=30), min_size=1, max_size=5),
    rows=st.integers(0, 30),
    fine=st.sampled_from([4, 16, FINE_BINS]),
    binned=st.lists(st.booleans(), min_size=5, max_size=5),
)
def test_the_batch_profile_of_a_matrix_is_each_columns_profile(
    reference, columns, rows, fine, binned
) -> None:
    # profile_rows profiles numeric features from one float matrix at once (sorted
    # columns, one bincount): it must equal FeatureProfile.of on each column.
    names = [f"x{j}" for j in range(len(columns))]
    fitted = fit_bins(reference, "numeric", fine)
    bins = {n: fitted for n, b in zip(names, binned[: len(names)], strict=True) if b}
    events = [{n: col[i] for n, col in zip(names, columns, strict=True)} for i in range(rows)]
    got = profile_rows(events, dict.fromkeys(names, "numeric"), bins)
    assert list(got) == names
    for name, col in zip(names, columns, strict=True):
        whole = FeatureProfile.of(col[:rows], "numeric", bins.get(name))
        assert_same(got[name], whole, col[:rows])


@settings(max_examples=200, deadline=None)
@given(
    reference=st.lists(st.sampled_from(["a", "b", "c", 1, 2, True]), min_size=1, max_size=50),
    values=st.lists(st.one_of(st.sampled_from(["a", "b", "z", 1, 3, False]), st.none())),
    cuts=st.lists(st.integers(0, 1000), max_size=6),
    top=st.integers(1, 4),
)
def test_categorical_profile_merged_from_any_split_is_the_whole(
    reference, values, cuts, top
) -> None:
    bins = fit_bins(reference, "categorical", max_categories=top)
    merged = FeatureProfile.zero(bins)
    for part in split(values, cuts):
        merged = merged.merge(FeatureProfile.of(part, "categorical", bins))
    whole = FeatureProfile.of(values, "categorical", bins)
    assert (merged.count, merged.missing) == (whole.count, whole.missing)
    np.testing.assert_array_equal(merged.histogram, whole.histogram)
    spelled = pd.Series([str(v).lower() if isinstance(v, bool) else str(v) for v in values])
    spelled = spelled[[v is not None for v in values]]
    expected = [int((spelled == c).sum()) for c in bins.categories]
    expected.append(len(spelled) - sum(expected))
    assert whole.histogram.tolist() == expected


def test_categories_are_bounded_to_the_most_frequent() -> None:
    reference = ["a"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"]
    bins = fit_bins(reference, "categorical", max_categories=2)
    assert bins.categories == ("a", "b")
    profile = FeatureProfile.of(["a", "c", "d", "q", None], "categorical", bins)
    assert profile.histogram.tolist() == [1, 0, 3]


def test_the_quantile_sketch_rank_error_is_one_bin() -> None:
    rng = np.random.default_rng(4)
    reference = rng.lognormal(0, 1, 200_000)
    bins = fit_bins(reference, "numeric")
    profile = FeatureProfile.of(reference, "numeric", bins)
    shares = profile.histogram / profile.count
    assert shares.max() <= 1 / FINE_BINS + 1 / reference.size
    # At the edges the rank is exact; anywhere else it is within the bin's share.
    cumulative = np.cumsum(shares)
    exact = np.searchsorted(np.sort(reference), bins.edges, "right") / reference.size
    np.testing.assert_allclose(cumulative[:-1], exact, rtol=0, atol=1e-12)
    queries = rng.lognormal(0, 1.2, 1000)
    i = np.searchsorted(bins.edges, queries, "left")
    below = np.concatenate(([0.0], cumulative))[i]
    true_rank = np.searchsorted(np.sort(reference), queries, "right") / reference.size
    assert np.all(true_rank >= below - 1e-12)
    assert np.all(true_rank - below <= shares[i] + 1e-12)


def test_reference_profile_survives_its_stored_form() -> None:
    rng = np.random.default_rng(3)
    columns = {
        "x": ("numeric", rng.exponential(size=5000)),
        "k": ("numeric", rng.integers(0, 4, 5000).astype(float)),
        "c": ("categorical", rng.choice(["u", "v"], 5000)),
    }
    profile = ReferenceProfile.build(columns, 5000)
    again = ReferenceProfile.from_json(orjson.loads(orjson.dumps(profile.as_json())))
    assert again.rows == 5000 and list(again.features) == ["x", "k", "c"]
    for name, f in profile.features.items():
        g = again.features[name]
        assert g.bins == f.bins and g.distinct == f.distinct
        np.testing.assert_array_equal(g.profile.histogram, f.profile.histogram)
        assert g.profile.to_bytes() == f.profile.to_bytes()
    assert profile.features["k"].bins.discrete and profile.features["k"].distinct == 4
    assert profile.features["x"].distinct == FINE_BINS + 1
    with pytest.raises(ValueError, match="profile-v1"):
        ReferenceProfile.from_json({"rows": 3, "psi_bins": 10, "features": {}})


def test_merging_profiles_on_different_bins_is_refused() -> None:
    a = FeatureProfile.of([1.0], "numeric", FeatureBins("numeric", np.array([0.0, 2.0])))
    with pytest.raises(ValueError, match="different bins"):
        a.merge(FeatureProfile.of([1.0], "numeric", None))


# -- stored at ingest ---------------------------------------------------------------


def upload_reference(api, frame: pd.DataFrame) -> None:
    response = api.put(
        "/v1/models/credit/versions/v1/reference",
        content=frame.to_csv(index=False).encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.text


def events(rng: np.random.Generator, ids: range, seconds: int = 0) -> list[dict]:
    return [
        credit_event(
            i,
            timestamp=1_700_000_000 + seconds + i % 50,
            features={
                "income": float(rng.normal(1000, 100)) if i % 7 else None,
                "age": int(rng.integers(18, 80)),
                "region": str(rng.choice(["north", "south", "west"])),
                "has_card": bool(i % 3),
            },
        )
        for i in ids
    ]


def test_ingest_keeps_window_profiles_equal_to_the_profile_of_all_rows(api) -> None:
    rng = np.random.default_rng(9)
    frame = pd.DataFrame(
        {
            "income": rng.normal(1000, 100, 500),
            "age": rng.integers(18, 80, 500),
            "region": rng.choice(["north", "south"], 500),
            "has_card": rng.random(500) < 0.5,
        }
    )
    upload_reference(api, frame)
    batches = [events(rng, range(0, 300)), events(rng, range(300, 450))]
    for batch in batches:
        assert api.post("/v1/ingest/predictions", json={"events": batch}).status_code == 200
    # A redelivered batch (and a repeat within a batch) changes no profile.
    again = api.post("/v1/ingest/predictions", json={"events": batches[1][:20] + batches[1][:5]})
    assert again.json()["stored"] == 0
    store = api.app.state.store
    reference = ReferenceProfile.from_json(store.latest_reference("credit", "v1").profile)
    window = 300  # the default window length; every event time falls in one window
    start = (1_700_000_000 // window) * window
    stored = store.window_profiles("credit", "v1", window, float(start))
    assert sorted(stored) == ["age", "has_card", "income", "region"]
    rows = [e["features"] for b in batches for e in b]
    for name, (revision, profile) in stored.items():
        assert revision == 1
        kind = reference.features[name].kind
        whole = FeatureProfile.of([r[name] for r in rows], kind, reference.features[name].bins)
        assert_same(profile, whole, [r[name] for r in rows])
    assert stored["income"][1].missing == sum(1 for r in rows if r["income"] is None) > 0


def test_a_new_reference_rebuilds_the_window_profiles_from_rows(api) -> None:
    rng = np.random.default_rng(2)
    first = pd.DataFrame(
        {
            "income": rng.normal(0, 1, 300),
            "age": rng.integers(18, 80, 300),
            "region": rng.choice(["north", "south"], 300),
            "has_card": rng.random(300) < 0.5,
        }
    )
    batch = events(rng, range(100))
    assert api.post("/v1/ingest/predictions", json={"events": batch}).status_code == 200
    store = api.app.state.store
    start = float((1_700_000_000 // 300) * 300)
    before = store.window_profiles("credit", "v1", 300, start)
    assert {rev for rev, _ in before.values()} == {0}, "no reference yet: no histogram"
    assert before["income"][1].histogram.size == 0 and before["income"][1].count > 0
    upload_reference(api, first)
    more = events(rng, range(100, 200))
    assert api.post("/v1/ingest/predictions", json={"events": more}).status_code == 200
    assert {rev for rev, _ in store.window_profiles("credit", "v1", 300, start).values()} == {-1}
    loop = api.app.state.loop
    loop.mark("credit", "v1", [start])
    results = loop.run_once()
    assert results and {d.feature for d in results[0].drift} == {
        "income",
        "age",
        "region",
        "has_card",
    }
    rebuilt = store.window_profiles("credit", "v1", 300, start)
    reference = ReferenceProfile.from_json(store.latest_reference("credit", "v1").profile)
    rows = [e["features"] for e in batch + more]
    for name, (revision, profile) in rebuilt.items():
        assert revision == 1
        f = reference.features[name]
        whole = FeatureProfile.of([r[name] for r in rows], f.kind, f.bins)
        np.testing.assert_array_equal(profile.histogram, whole.histogram)
        assert profile.count == whole.count == sum(r[name] is not None for r in rows)


def test_concurrent_writers_never_lose_a_profile_update(store) -> None:
    """Four writers merge into the same window's profiles at once: every row counts
    (PostgreSQL: the advisory lock per window; SQLite: the store's write lock)."""
    import threading

    from monitor.core.profile import ProfileKey, profile_rows
    from tests.conftest import credit_model

    store.put_model(credit_model())
    kinds = {"income": "numeric"}
    bins = {"income": fit_bins(np.arange(100.0), "numeric")}

    def rows(writer: int, batch: int) -> list[dict]:
        return [
            {
                "event_id": f"w{writer}-b{batch}-{i}",
                "model": "credit",
                "model_version": "v1",
                "ts": 1000.0,
                "received_at": 1000.0,
                "features": {"income": float((writer * 7 + batch * 3 + i) % 100)},
                "outputs": {},
                "latency_seconds": None,
                "trace_id": None,
                "parent_span_id": None,
                "variant": None,
                "stage": None,
                "segment": {},
                "correlation_key": None,
            }
            for i in range(50)
        ]

    def deltas(new: list[dict]) -> dict:
        profiles = profile_rows([r["features"] for r in new], kinds, bins)
        return {ProfileKey("credit", "v1", 60, 960.0, "", n): (1, p) for n, p in profiles.items()}

    errors: list[BaseException] = []

    def write(writer: int) -> None:
        try:
            for batch in range(10):
                store.insert_predictions(rows(writer, batch), deltas)
        except BaseException as exc:  # noqa: BLE001  (reported below)
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    revision, profile = store.window_profiles("credit", "v1", 60, 960.0)["income"]
    everything = [r["features"]["income"] for w in range(4) for b in range(10) for r in rows(w, b)]
    whole = FeatureProfile.of(everything, "numeric", bins["income"])
    assert revision == 1 and profile.count == 2000
    np.testing.assert_array_equal(profile.histogram, whole.histogram)
    assert profile.mean == pytest.approx(whole.mean, rel=1e-12)


def test_a_reference_stored_before_profiles_is_profiled_again_from_its_data(api) -> None:
    from monitor.reference import to_parquet

    rng = np.random.default_rng(12)
    frame = pd.DataFrame(
        {
            "income": rng.normal(1000, 100, 400),
            "age": rng.integers(18, 80, 400),
            "region": rng.choice(["north", "south", "west"], 400),
            "has_card": rng.random(400) < 0.5,
        }
    )
    store = api.app.state.store
    old_profile = {"rows": 400, "psi_bins": 10, "features": {"income": {"kind": "numeric"}}}
    store.add_reference(
        "credit", "v1", rows=400, source_format="csv", data=to_parquet(frame), profile=old_profile
    )
    batch = events(rng, range(200))
    assert api.post("/v1/ingest/predictions", json={"events": batch}).status_code == 200
    start = float((1_700_000_000 // 300) * 300)
    loop = api.app.state.loop
    loop.mark("credit", "v1", [start])
    (result,) = loop.run_once()  # its rollups wait for the end of the current base window
    assert {d.feature: d.test for d in result.drift} == {
        "income": "ks",
        "age": "ks",
        "region": "chisquare",
        "has_card": "z",
    }
    income = next(d for d in result.drift if d.feature == "income")
    window = [v for e in batch if (v := e["features"]["income"]) is not None]
    exact = stats.ks_2samp(frame["income"].dropna().to_numpy(), window).statistic
    assert income.statistic - 1e-12 <= exact
    assert exact <= income.statistic + income.error_bound + 1e-12
