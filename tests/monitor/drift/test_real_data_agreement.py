"""The service's drift verdicts and values equal Evidently's on real-shaped data.

The numeric features of the datasets scikit-learn ships (breast cancer, diabetes, wine:
many distinct values, skewed, ties) go through the path the service takes: rows stored,
their profiles built by the store, the reference profiled at upload, the window scored
by :class:`~monitor.score.scorer.WindowScorer` (which computes a test from the window's
rows wherever its profile cannot settle the verdict and the value to 1e-3). Windows of 50
to 5,000 rows are drawn with replacement; half of them are shifted by amounts around the
threshold. Every verdict must equal Evidently's, every value lie within 1e-3 of it.

Three references per dataset: the dataset itself (at most 1,000 rows: Kolmogorov-Smirnov),
a 3,000-row bootstrap of it (normalised Wasserstein; at most 569 distinct values, which
its profile holds one by one) and a 3,000-row smoothed bootstrap (each value jittered by
a twentieth of the feature's deviation: over 1,000 distinct values, binned by quantile,
so that the exact computation reads the reference's stored Parquet). Diabetes' ``sex``
has two values: shifted, it has four over both samples, which Evidently counts to choose
its test (chi-squared rather than Z, by value), and so must the scorer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from collectors.contract import ModelDescription
from monitor.core.windows import Window
from monitor.reference import profile_reference, to_parquet
from monitor.score.fitted import ScoringOptions
from monitor.score.scorer import WindowScorer
from monitor.store import Store

T0, W = 1_700_000_040.0, 60
SIZES = (50, 150, 500, 1500, 5000)
TOLERANCE = 1e-3
"""Largest difference allowed between a value and Evidently's."""


def _datasets() -> dict[str, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer, load_diabetes, load_wine

    found = {}
    for name, load in (
        ("breast_cancer", load_breast_cancer),
        ("diabetes", load_diabetes),
        ("wine", load_wine),
    ):
        data = load()
        frame = pd.DataFrame(data.data, columns=[_clean(c) for c in data.feature_names])
        found[name] = frame
    return found


def _clean(name: str) -> str:
    return name.replace(" ", "_").replace("/", "_")


def _model(name: str, columns: list[str]) -> ModelDescription:
    return ModelDescription.model_validate(
        {
            "name": name,
            "task": "regression",
            "features": [{"name": c, "type": "numeric"} for c in columns],
        }
    )


@dataclass(frozen=True)
class Scored:
    """One window as the scorer scored it, with what Evidently was given."""

    label: str
    reference: pd.DataFrame
    current: pd.DataFrame
    drift: dict[str, tuple[str, float, bool]]
    """Feature to (test, value, drifted)."""


def _shift(
    rng: np.random.Generator, reference: pd.DataFrame, rows: int
) -> Callable[[pd.Series], float]:
    # Around the threshold: Wasserstein's is 0.1 of the reference's deviation; KS's
    # p = 0.05 sits near a difference in CDFs of 1.36 sqrt(1/n + 1/m).
    n = len(reference)
    scale = 0.1 if n > 1000 else 1.36 * math.sqrt(1 / n + 1 / rows) / 0.4

    def amount(column: pd.Series) -> float:
        return float(rng.uniform(0.5, 1.5) * scale * column.std(ddof=0))

    return amount


def _windows(tmp: Path) -> Iterator[Scored]:
    rng = np.random.default_rng(20261203)
    store = Store(f"sqlite:///{tmp / 'real.db'}")
    store.migrate()
    scorer = WindowScorer(
        store,
        window_seconds=W,
        min_window_events=1,
        fdr=None,  # Evidently judges each feature on its own
        options=ScoringOptions(multivariate=None),
    )
    try:
        for dataset, frame in _datasets().items():
            model = _model(dataset, list(frame.columns))
            store.put_model(model)
            boot = frame.sample(3000, replace=True, random_state=7).reset_index(drop=True)
            jitter = rng.normal(0, 0.05, boot.shape) * frame.std(ddof=0).to_numpy()
            smooth = boot + jitter
            for version, reference in (("small", frame), ("large", boot), ("smooth", smooth)):
                store.add_reference(
                    dataset,
                    version,
                    rows=len(reference),
                    source_format="parquet",
                    data=to_parquet(reference),
                    profile=profile_reference(reference, model),
                )
                k = 0
                for rows in SIZES:
                    for shifted in (False, True):
                        current = frame.sample(
                            rows, replace=True, random_state=int(rng.integers(2**31))
                        ).reset_index(drop=True)
                        if shifted:
                            amount = _shift(rng, reference, rows)
                            current = current.apply(lambda c, a=amount: c + a(c))
                        start = T0 + k * W
                        k += 1
                        _insert(store, dataset, version, start, current)
                        result = scorer.score(model, Window.of_time(dataset, version, start, W))
                        yield Scored(
                            f"{dataset}/{version}/{rows}/{'shifted' if shifted else 'same'}",
                            reference,
                            current,
                            {d.feature: (d.test, d.value, d.drifted) for d in result.drift},
                        )
    finally:
        store.close()


def _insert(
    store: Store,
    model: str,
    version: str,
    start: float,
    frame: pd.DataFrame,
    outputs: list[dict[str, Any]] | None = None,
) -> None:
    records = frame.to_dict("records")
    store.insert_predictions(
        [
            {
                "event_id": f"{model}-{version}-{start}-{i}",
                "model": model,
                "model_version": version,
                "ts": start + i * (W - 1) / len(records),
                "received_at": start,
                "features": features,
                "outputs": {"value": 0.0} if outputs is None else outputs[i],
                "latency_seconds": 0.01,
                "trace_id": None,
                "parent_span_id": None,
                "variant": None,
                "stage": None,
                "segment": {},
                "correlation_key": None,
            }
            for i, features in enumerate(records)
        ]
    )


def test_every_verdict_and_value_equals_evidentlys_on_real_data(
    evidently: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.score.exact import ReferenceColumns

    # Which features were read raw, and which reference columns from the Parquet.
    raw: list[str] = []
    parquet: list[str] = []
    window_values, reference_columns = Store.window_feature_values, ReferenceColumns.read

    def spy_window(self: Store, window: Window, names: Any) -> Any:
        raw.extend(names)
        return window_values(self, window, names)

    def spy_reference(self: ReferenceColumns, *args: Any) -> Any:
        found = reference_columns(self, *args)
        parquet.extend(found)
        return found

    monkeypatch.setattr(Store, "window_feature_values", spy_window)
    monkeypatch.setattr(ReferenceColumns, "read", spy_reference)
    checked = 0
    verdicts: list[str] = []
    values: list[str] = []
    for window in _windows(tmp_path):
        assert set(window.drift) == set(window.current.columns), window.label
        for feature, (test, value, drifted) in window.drift.items():
            ref = window.reference[feature].to_numpy()
            cur = window.current[feature].to_numpy()
            name = evidently.default(ref, cur, "numeric")
            threshold = 0.1 if name == "wasserstein" else 0.05
            theirs, theirs_drifted = evidently.run(name, ref, cur, "numeric", threshold)
            checked += 1
            line = (
                f"{window.label} {feature}: ours {test} {value:.6f} {drifted}, "
                f"Evidently {name} {float(theirs):.6f} {bool(theirs_drifted)}"
            )
            if test != name or bool(theirs_drifted) != drifted:
                verdicts.append(line)
            elif abs(value - theirs) > TOLERANCE:
                values.append(line)
    assert checked > 1500
    assert not verdicts + values, (
        f"of {checked}: {len(verdicts)} verdicts differ, {len(values)} more values are "
        f"further than {TOLERANCE}:\n" + "\n".join((verdicts + values)[:40])
    )
    # Both paths were taken: results settled by profiles, and tests computed from the
    # rows, with references rebuilt from their profiles and read from their Parquet.
    assert 0 < len(raw) < checked
    assert parquet


@pytest.mark.parametrize("shift", [0.0, 0.35])
def test_output_drift_is_computed_from_every_row_of_the_window(
    evidently: Any, tmp_path: Path, shift: float
) -> None:
    # A classifier's served scores: skewed, piled up near 0 and 1. The window holds four
    # times the default sample (SIDEWATCH_SCORE_SAMPLE_ROWS): a sample's Wasserstein
    # distance is biased upwards by about 1 / sqrt(rows read).
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    classifier = make_pipeline(StandardScaler(), LogisticRegression(C=0.05, max_iter=1000))
    classifier.fit(data.data, data.target)
    rng = np.random.default_rng(16)
    x_ref = data.data[rng.integers(0, len(data.data), 3000)]
    # Smoothed: continuous scores, more distinct values than the profile counts one by one.
    x_ref = x_ref + rng.normal(0, 0.02, x_ref.shape) * data.data.std(axis=0)
    x_cur = data.data[rng.integers(0, len(data.data), 4 * ScoringOptions().sample_rows)]
    x_cur = x_cur + shift * data.data.std(axis=0)
    ref_score = classifier.predict_proba(x_ref)[:, 1]
    cur_score = classifier.predict_proba(x_cur)[:, 1]
    model = ModelDescription.model_validate(
        {
            "name": "cancer",
            "task": "binary",
            "positive_class": 1,
            "features": [{"name": "mean_radius", "type": "numeric"}],
        }
    )
    store = Store(f"sqlite:///{tmp_path / 'outputs.db'}")
    store.migrate()
    try:
        store.put_model(model)
        reference = pd.DataFrame(
            {
                "mean_radius": x_ref[:, 0],
                "prediction": (ref_score >= 0.5).astype(int),
                "score": ref_score,
            }
        )
        store.add_reference(
            "cancer",
            "v1",
            rows=len(reference),
            source_format="parquet",
            data=to_parquet(reference),
            profile=profile_reference(reference, model),
        )
        served = [{"predicted_class": int(s >= 0.5), "score": float(s)} for s in cur_score.tolist()]
        _insert(
            store,
            "cancer",
            "v1",
            T0,
            pd.DataFrame({"mean_radius": x_cur[:, 0]}),
            served,
        )
        scorer = WindowScorer(store, window_seconds=W, min_window_events=30)
        result = scorer.score(model, Window.of_time("cancer", "v1", T0, W))
    finally:
        store.close()
    assert result.scores is not None and result.scores.prediction_drift is not None
    found = {d.output: d for d in result.scores.prediction_drift}
    positive = (cur_score >= 0.5).astype(int)
    for output, ref, cur in (
        ("score", ref_score, cur_score),
        ("class", (ref_score >= 0.5).astype(int), positive),
    ):
        kind = "numeric" if output == "score" else "categorical"
        name = evidently.default(ref, cur, kind)
        threshold = 0.1
        theirs, drifted = evidently.run(name, ref, cur, kind, threshold)
        ours = found[output]
        assert (ours.test, ours.drifted) == (name, bool(drifted)), output
        assert ours.value == pytest.approx(float(theirs), abs=TOLERANCE), output
        assert ours.current_count == len(cur_score)


def test_the_store_reads_a_windows_values_exactly_on_both_backends(store: Store) -> None:
    # Exact drift reads the values the profiles were built from: every bit of a double
    # (SQLite's JSON functions print 15 digits), booleans, nulls and absent keys kept apart.
    values: list[Any] = [0.1 + 0.2, math.pi, 1e300, -0.0, 7, True, None, "x"]
    rows = [
        {
            "event_id": f"v-{i}",
            "model": "m",
            "model_version": "v1",
            "ts": T0 + i,
            "received_at": T0,
            "features": {"a": v, "b": i} if i != 3 else {"b": i},
            "outputs": {"score": i / 10},
            "latency_seconds": None,
            "trace_id": None,
            "parent_span_id": None,
            "variant": None,
            "stage": None,
            "segment": {},
            "correlation_key": None,
        }
        for i, v in enumerate(values)
    ]
    outside = dict(rows[0], event_id="late", ts=T0 + W)
    store.insert_predictions([*rows, outside])
    window = Window.of_time("m", "v1", T0, W)
    found = store.window_feature_values(window, ["a", "b", "nowhere"])
    order = np.argsort(found["b"])
    a = [found["a"][k] for k in order]
    expected = [v if i != 3 else None for i, v in enumerate(values)]
    assert [repr(v) for v in a] == [repr(v) for v in expected]
    assert found["nowhere"] == [None] * len(values)
    assert store.window_feature_values(window, []) == {}
    chunks = list(store.window_outputs(window, chunk_rows=3))
    assert [len(c) for c in chunks] == [3, 3, 2]
    assert sorted(o["score"] for c in chunks for o in c) == [i / 10 for i in range(len(values))]


@pytest.mark.parametrize(
    ("test", "top", "rows", "shares"),
    [
        ("chisquare", 4, 800, (0.25, 0.25, 0.25, 0.25)),
        ("z", 2, 800, (0.5, 0.5)),
        # Beyond 1,000 reference values, Jensen-Shannon by value: a rare value is not
        # merged with its neighbour into a coarse quantile bin.
        ("jensenshannon", 3, 3000, (0.02, 0.5, 0.48)),
    ],
)
def test_a_numeric_feature_counted_by_value_is_compared_value_by_value(
    evidently: Any, test: str, top: int, rows: int, shares: tuple[float, ...]
) -> None:
    # A rating of 1 to ``top``; the shifted window also holds halves, which the
    # reference's value bins would count with the next value up.
    from monitor.core.profile import FeatureProfile, ReferenceProfile
    from monitor.score.exact import RawValues

    rng = np.random.default_rng(4)
    values = np.arange(1, top + 1, dtype=float)
    reference = rng.choice(values, rows, p=shares)
    current = rng.choice(values, 300, p=shares[::-1])
    profile = ReferenceProfile.build({"rating": ("numeric", reference)}, reference.size)
    bins = profile.features["rating"].bins
    store = Store("sqlite://")
    scorer = WindowScorer(store, window_seconds=W, min_window_events=1, fdr=None)

    def unread(names: Any) -> Any:
        raise AssertionError("values read where the profile settles the test")

    # The window's values are the reference's: the profile's counts are the values'.
    window = {"rating": FeatureProfile.of(current, "numeric", bins)}
    (settled,) = scorer.drift(profile, window, RawValues(unread, unread))
    assert evidently.default(reference, current, "numeric") == settled.test == test
    threshold = 0.05 if test != "jensenshannon" else 0.1
    theirs, drifted = evidently.run(test, reference, current, "categorical", threshold)
    assert settled.error_bound == 0.0
    assert settled.value == pytest.approx(float(theirs), rel=1e-9, abs=1e-300)
    assert settled.drifted is bool(drifted)
    # Halves: the counts are not the values' any more, and the profile says so. Counted
    # over both samples there are now more values, and Evidently (so the scorer) may
    # choose another test: KS or Wasserstein past five values, chi-squared past two.
    current[:6] -= 0.5
    window = {"rating": FeatureProfile.of(current, "numeric", bins)}
    (unsettled,) = scorer.drift(profile, window)
    assert unsettled.error_bound == 1.0, "the profile says its counts are not the values'"
    raw = RawValues(lambda names: {"rating": reference}, lambda names: {"rating": list(current)})
    (ours,) = scorer.drift(profile, window, raw)
    chosen = evidently.default(reference, current, "numeric")
    threshold = 0.1 if chosen in ("jensenshannon", "wasserstein") else 0.05
    theirs, drifted = evidently.run(chosen, reference, current, "numeric", threshold)
    assert ours.test == chosen != test and ours.error_bound == 0.0
    assert ours.value == pytest.approx(float(theirs), rel=1e-9, abs=1e-12)
    assert ours.drifted is bool(drifted)
    # Chosen by hand, the test stays, computed from the values.
    pinned = WindowScorer(store, window_seconds=W, min_window_events=1, fdr=None, drift_test=test)
    (kept,) = pinned.drift(profile, window, raw)
    threshold = 0.1 if test == "jensenshannon" else 0.05
    theirs, drifted = evidently.run(test, reference, current, "categorical", threshold)
    assert kept.test == test and kept.error_bound == 0.0
    assert kept.value == pytest.approx(float(theirs), rel=1e-9, abs=1e-12)
    assert kept.drifted is bool(drifted)
    store.close()


@pytest.mark.parametrize(("test", "rows"), [("chisquare", 800), ("jensenshannon", 3000)])
def test_a_feature_with_more_categories_than_profiles_count_is_tested_on_its_values(
    evidently: Any, tmp_path: Path, test: str, rows: int
) -> None:
    # 300 cities, long-tailed: the profile counts the 100 most frequent one by one and
    # lumps the rest; the window moves weight within the tail.
    rng = np.random.default_rng(300)
    cities = np.array([f"c{i:03d}" for i in range(300)])
    weights = 1 / np.arange(1, 301)
    reference = rng.choice(cities, rows, p=weights / weights.sum())
    moved = weights.copy()
    moved[150:] *= 3
    current = rng.choice(cities, 600, p=moved / moved.sum())
    current = current[np.isin(current, reference)]  # no new city: p is not simply 0
    model = ModelDescription.model_validate(
        {
            "name": "cities",
            "task": "regression",
            "features": [{"name": "city", "type": "categorical"}],
        }
    )
    store = Store(f"sqlite:///{tmp_path / 'cities.db'}")
    store.migrate()
    try:
        store.put_model(model)
        frame = pd.DataFrame({"city": reference})
        store.add_reference(
            "cities",
            "v1",
            rows=rows,
            source_format="parquet",
            data=to_parquet(frame),
            profile=profile_reference(frame, model),
        )
        _insert(store, "cities", "v1", T0, pd.DataFrame({"city": current}))
        scorer = WindowScorer(store, window_seconds=W, min_window_events=1, fdr=None)
        (ours,) = scorer.score(model, Window.of_time("cities", "v1", T0, W)).drift
    finally:
        store.close()
    name = evidently.default(reference, current, "categorical")
    threshold = 0.05 if test == "chisquare" else 0.1
    theirs, drifted = evidently.run(name, reference, current, "categorical", threshold)
    assert ours.test == name == test
    assert ours.value == pytest.approx(float(theirs), rel=1e-9, abs=1e-12)
    assert ours.drifted is bool(drifted)
    assert ours.error_bound == 0.0


def test_reference_columns_are_read_once_per_revision(tmp_path: Path) -> None:
    from monitor.score.exact import ReferenceColumns

    store = Store(f"sqlite:///{tmp_path / 'columns.db'}")
    store.migrate()
    model = _model("m", ["a"])
    store.put_model(model)

    def upload(frame: pd.DataFrame) -> int:
        info = store.add_reference(
            "m",
            "v1",
            rows=len(frame),
            source_format="parquet",
            data=to_parquet(frame),
            profile=profile_reference(frame, model),
        )
        return info.revision

    first = upload(pd.DataFrame({"a": [math.pi, None, 2.0], "b": [3.0, None, 1.0]}))
    columns = ReferenceColumns(store)
    reads = 0
    reference_data = store.reference_data

    def counted(*args: Any) -> Any:
        nonlocal reads
        reads += 1
        return reference_data(*args)

    store.reference_data = counted  # type: ignore[method-assign,assignment]
    found = columns.read("m", "v1", first, {"a": "a", "c": "c"})
    assert set(found) == {"a"}, "a column the reference lacks is left out"
    assert found["a"][0] == math.pi and math.isnan(found["a"][1])
    assert columns.read("m", "v1", first, {"a": "a", "c": "c"})["a"][2] == 2.0
    assert reads == 1, "a column is read from the Parquet once (and a missing one sought once)"
    found = columns.read("m", "v1", first, {"b": "b"}, ["b"])
    assert found["b"].tolist() == ["3", "1"], "spelled as the profiles spell categories"
    second = upload(pd.DataFrame({"a": [5.0], "b": [2.0]}))
    assert columns.read("m", "v1", first, {"b": "d"}) == {}, "no longer the newest revision"
    assert columns.read("m", "v1", second, {"a": "a"})["a"].tolist() == [5.0]
    assert reads == 4
    store.close()


def test_a_served_class_among_more_classes_than_profiles_count_is_tested_on_its_values(
    evidently: Any, tmp_path: Path
) -> None:
    # 150 classes, long-tailed: the class profile counts 100 of them and lumps the rest.
    rng = np.random.default_rng(150)
    classes = np.array([f"k{i:03d}" for i in range(150)])
    weights = 1 / np.arange(1, 151)
    reference = rng.choice(classes, 3000, p=weights / weights.sum())
    moved = weights.copy()
    moved[100:] *= 4
    served = rng.choice(classes, 1500, p=moved / moved.sum())
    model = ModelDescription.model_validate(
        {
            "name": "many",
            "task": "multiclass",
            "features": [{"name": "x", "type": "numeric"}],
        }
    )
    store = Store(f"sqlite:///{tmp_path / 'many.db'}")
    store.migrate()
    try:
        store.put_model(model)
        frame = pd.DataFrame({"x": rng.normal(size=3000), "prediction": reference})
        store.add_reference(
            "many",
            "v1",
            rows=3000,
            source_format="parquet",
            data=to_parquet(frame),
            profile=profile_reference(frame, model),
        )
        outputs = [{"predicted_class": str(c)} for c in served]
        _insert(store, "many", "v1", T0, pd.DataFrame({"x": rng.normal(size=1500)}), outputs)
        scorer = WindowScorer(store, window_seconds=W, min_window_events=1)
        result = scorer.score(model, Window.of_time("many", "v1", T0, W))
    finally:
        store.close()
    assert result.scores is not None and result.scores.prediction_drift is not None
    (ours,) = [d for d in result.scores.prediction_drift if d.output == "class"]
    name = evidently.default(reference, served, "categorical")
    theirs, drifted = evidently.run(name, reference, served, "categorical", 0.1)
    assert ours.test == name == "jensenshannon"
    assert ours.value == pytest.approx(float(theirs), rel=1e-9, abs=1e-12)
    assert ours.drifted is bool(drifted)
    assert ours.error_bound == 0.0


def test_psi_of_several_new_categories_is_computed_from_the_values(evidently: Any) -> None:
    # The profile counts every new category in one "other" bin; Evidently's PSI fills each
    # one's empty reference share on its own, so the lumped count is not its answer.
    from monitor.core.profile import FeatureProfile, ReferenceProfile
    from monitor.score.exact import RawValues

    rng = np.random.default_rng(5)
    reference = rng.choice(["a", "b", "c"], 2000)
    current = np.concatenate([rng.choice(["a", "b", "c"], 500), ["x", "y", "z", "w"] * 10])
    profile = ReferenceProfile.build({"k": ("categorical", reference)}, reference.size)
    window = {"k": FeatureProfile.of(current, "categorical", profile.features["k"].bins)}
    store = Store("sqlite://")
    scorer = WindowScorer(store, window_seconds=W, min_window_events=1, drift_test="psi")
    (unsettled,) = scorer.drift(profile, window)
    assert unsettled.error_bound == 1.0
    raw = RawValues(lambda names: {"k": reference}, lambda names: {"k": list(current)})
    (ours,) = scorer.drift(profile, window, raw)
    theirs, drifted = evidently.run("psi", reference, current, "categorical", 0.2)
    assert ours.value == pytest.approx(float(theirs), rel=1e-9)
    assert abs(unsettled.value - float(theirs)) > 0.1, "the lumped count was not the answer"
    assert ours.drifted is bool(drifted)
    store.close()


def test_a_new_category_beside_two_known_ones_is_tested_as_evidently_chooses(
    evidently: Any,
) -> None:
    # Two categories in the reference: Z. A third in the window: Evidently, counting the
    # values of both samples, takes chi-squared, and so does the scorer.
    from monitor.core.profile import FeatureProfile, ReferenceProfile
    from monitor.score.exact import RawValues

    rng = np.random.default_rng(2)
    reference = rng.choice(["card", "cash"], 800)
    current = np.concatenate([rng.choice(["card", "cash"], 290), ["voucher"] * 10])
    profile = ReferenceProfile.build({"pay": ("categorical", reference)}, reference.size)
    window = {"pay": FeatureProfile.of(current, "categorical", profile.features["pay"].bins)}
    store = Store("sqlite://")
    scorer = WindowScorer(store, window_seconds=W, min_window_events=1, fdr=None)
    raw = RawValues(lambda names: {"pay": reference}, lambda names: {"pay": list(current)})
    (ours,) = scorer.drift(profile, window, raw)
    name = evidently.default(reference, current, "categorical")
    theirs, drifted = evidently.run(name, reference, current, "categorical", 0.05)
    assert ours.test == name == "chisquare"
    assert ours.value == pytest.approx(float(theirs), abs=1e-300)
    assert ours.drifted is bool(drifted)
    (configured,) = WindowScorer(
        store, window_seconds=W, min_window_events=1, fdr=None, drift_test="z"
    ).drift(profile, window, raw)
    assert configured.test == "z", "a configured test stays"
    store.close()
