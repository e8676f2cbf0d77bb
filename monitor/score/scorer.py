"""Scores one window of one model version from stored profiles and rows.

Drift reads the window's feature profiles (kept up to date at ingest) and the
reference's profile, so it costs what the features and bins cost, not the events. The
test of each feature is chosen as Evidently 0.7 chooses it, unless configured; the
p-value tests of a window are then put under Benjamini-Hochberg control, and the
share of drifted features gives the dataset verdict.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from collectors.contract import ModelDescription
from monitor.errors import ConfigError
from monitor.score.drift.base import DriftScore
from monitor.score.drift.multiple import benjamini_hochberg
from monitor.score.drift.profiled import DEFAULT_COARSE_BINS, PROFILE_TESTS
from monitor.score.drift.registry import choose_test
from monitor.score.drift.verdict import DEFAULT_DRIFT_SHARE, dataset_drift
from monitor.score.profile import (
    FeatureBins,
    FeatureProfile,
    Kind,
    ReferenceFeature,
    ReferenceProfile,
)
from monitor.score.results import DEFINITION, FeatureDrift, WindowResult
from monitor.score.windows import Window
from monitor.store import Store

logger = logging.getLogger("sidewatch.score")

AUTO = "auto"
"""Choose each feature's test as Evidently does."""


class WindowScorer:
    """Computes a :class:`WindowResult`: counts, latency, drift per feature, accuracy.

    Args:
        store: Where profiles, rows, labels and reference profiles are read.
        window_seconds: Length of the windows whose profiles ingest keeps.
        min_window_events: Fewest non-missing values a feature needs in a window
            before its drift is scored; below it the feature is left out.
        psi_threshold: Threshold of the ``psi`` test (the others use Evidently's).
        psi_bins: Coarse reference-quantile bins of PSI, Jensen-Shannon and Hellinger.
        drift_test: ``auto`` or a test name to use wherever it applies.
        drift_tests: Feature name to the test for that feature.
        fdr: Benjamini-Hochberg false discovery rate over a window's p-value tests;
            None leaves each test's own threshold in charge.
        drift_share: Share of drifted features at which the dataset counts as drifted.

    Raises:
        ConfigError: A configured test name is unknown.
    """

    def __init__(
        self,
        store: Store,
        *,
        window_seconds: int,
        min_window_events: int,
        psi_threshold: float = 0.2,
        psi_bins: int = DEFAULT_COARSE_BINS,
        drift_test: str = AUTO,
        drift_tests: Mapping[str, str] | None = None,
        fdr: float | None = 0.05,
        drift_share: float = DEFAULT_DRIFT_SHARE,
    ) -> None:
        self._store = store
        self._window = window_seconds
        self._min_events = min_window_events
        self._psi_threshold = psi_threshold
        self._psi_bins = psi_bins
        self._drift_tests = dict(drift_tests or {})
        for name in [drift_test, *self._drift_tests.values()]:
            if name != AUTO and name not in PROFILE_TESTS:
                valid = ", ".join([AUTO, *sorted(PROFILE_TESTS)])
                raise ConfigError(f"unknown drift test {name!r}; valid tests: {valid}")
        self._drift_test = drift_test
        self._fdr = fdr
        self._drift_share = drift_share
        self._references: dict[tuple[str, str, int], ReferenceProfile | None] = {}

    def score(self, model: ModelDescription, window: Window) -> WindowResult:
        """Score one window of ``model`` (a time window, a segment's, or a count block).

        Drift reads the window's stored profiles (a base time window), their merge (a
        longer time window), or profiles built from its rows (a segment, a block);
        counts, latencies and labels are read from the window's rows.
        """
        version = window.version
        count, latencies = self._store.window_latencies(window)
        p50 = p95 = p99 = None
        if latencies:
            quantiles = np.quantile(np.asarray(latencies, dtype=float), [0.5, 0.95, 0.99])
            p50, p95, p99 = (float(q) for q in quantiles)
        reference = self._store.latest_reference(model.name, version)
        drift: tuple[FeatureDrift, ...] = ()
        if reference is not None and count:
            fitted = self._reference(model, version, reference.revision, reference.profile)
            if fitted is not None:
                profiles = self._window_profiles(model, window, reference.revision, fitted)
                drift = self.drift(fitted, profiles)
        verdict = (
            dataset_drift({d.feature: d.drifted for d in drift}, self._drift_share)
            if drift
            else None
        )
        labelled = self._store.labelled_in_window(window)
        return WindowResult(
            model=model.name,
            model_version=version,
            window_start=window.start,
            window_end=window.end,
            definition=DEFINITION,
            predictions=count,
            labelled=len(labelled),
            accuracy=_accuracy(model, labelled),
            latency_p50_seconds=p50,
            latency_p95_seconds=p95,
            latency_p99_seconds=p99,
            reference_revision=reference.revision if reference else None,
            drift=drift,
            scored_at=time.time(),
            drift_share=verdict.share if verdict else None,
            dataset_drifted=verdict.drifted if verdict else None,
            segment=window.segment_label,
            window_kind=window.kind,
            block=window.block,
        )

    def drift(
        self, reference: ReferenceProfile, window: Mapping[str, FeatureProfile]
    ) -> tuple[FeatureDrift, ...]:
        """Each feature's drift from its window profile, under multiple-testing control."""
        scores: dict[str, DriftScore] = {}
        for name, ref in reference.features.items():
            current = window.get(name)
            if current is None or current.count < self._min_events:
                continue
            test_name = self._choose(name, ref)
            test = PROFILE_TESTS[test_name]
            threshold = self._psi_threshold if test_name == "psi" else test.default_threshold
            try:
                scores[name] = test.score(ref, current, threshold, self._psi_bins)
            except ValueError:
                logger.exception("drift of feature %r could not be scored", name)
        adjusted: dict[str, tuple[float, bool]] = {}
        p_values = {n: s.p_value for n, s in scores.items() if s.p_value is not None}
        if self._fdr is not None and p_values:
            control = benjamini_hochberg(p_values, self._fdr)
            adjusted = {r.name: (r.adjusted_p_value, r.rejected) for r in control.results}
        results = []
        for name, s in scores.items():
            adj, drifted = adjusted.get(name, (None, s.drifted))
            results.append(
                FeatureDrift(
                    feature=name,
                    test=s.test,
                    value=s.drift_score,
                    threshold=s.threshold,
                    drifted=drifted,
                    current_count=s.current_count,
                    statistic=s.statistic,
                    adjusted_p_value=adj,
                    error_bound=s.error_bound,
                )
            )
        return tuple(results)

    def _choose(self, feature: str, ref: ReferenceFeature) -> str:
        configured = self._drift_tests.get(feature)
        if configured is None and self._drift_test != AUTO:
            configured = self._drift_test
        try:
            return choose_test(ref.kind, ref.profile.count, ref.distinct, configured).test.name
        except ConfigError:
            if feature in self._drift_tests:
                logger.warning(
                    "the drift test %r does not apply to feature %r (%s); choosing one",
                    configured,
                    feature,
                    ref.kind,
                )
            return choose_test(ref.kind, ref.profile.count, ref.distinct).test.name

    def _reference(
        self, model: ModelDescription, version: str, revision: int, profile: dict[str, Any]
    ) -> ReferenceProfile | None:
        key = (model.name, version, revision)
        if key not in self._references:
            try:
                self._references[key] = ReferenceProfile.from_json(profile)
            except ValueError:
                self._references[key] = self._profile_again(model, version, revision)
        return self._references[key]

    def _profile_again(
        self, model: ModelDescription, version: str, revision: int
    ) -> ReferenceProfile | None:
        # A reference stored before profiles existed: profile its stored data once (the
        # store keeps every reference as Parquet) and keep that in memory.
        import io

        import pandas as pd

        from monitor.reference import profile_reference

        found = self._store.reference_data(model.name, version)
        if found is None or found[0].revision != revision:
            return None
        logger.info("profiling reference %s/%s revision %d again", model.name, version, revision)
        frame = pd.read_parquet(io.BytesIO(found[1]), engine="pyarrow")
        return ReferenceProfile.from_json(profile_reference(frame, model))

    def _window_profiles(
        self,
        model: ModelDescription,
        window: Window,
        revision: int,
        reference: ReferenceProfile,
    ) -> dict[str, FeatureProfile]:
        kinds: dict[str, Kind] = {spec.name: spec.type for spec in model.features}
        bins = {name: f.bins for name, f in reference.features.items()}
        if window.kind != "time" or window.segment is not None:
            # Segments and blocks keep no profiles at ingest: profile their rows now.
            return self._store.profile_window(window, kinds, bins)
        merged: dict[str, FeatureProfile] = {}
        seen: set[float] = set()
        stored = self._store.window_profiles_between(
            window.model, window.version, self._window, window.start, window.end
        )
        for start, profiles in stored:
            seen.add(start)
            current = _current(profiles, revision, reference)
            if current is None:
                current = self._rebuild(window, start, kinds, bins, revision)
            _merge_into(merged, current)
        # A base window whose rows have no stored profile (rows stored before this
        # version of Sidewatch): profile it from its rows. An empty one costs a query.
        for k in range(round(window.seconds / self._window)):
            start = window.start + k * self._window
            if start not in seen:
                _merge_into(merged, self._rebuild(window, start, kinds, bins, revision))
        zero = {name: FeatureProfile.zero(f.bins) for name, f in reference.features.items()}
        return {name: merged.get(name, zero[name]) for name in reference.features}

    def _rebuild(
        self,
        window: Window,
        start: float,
        kinds: dict[str, Kind],
        bins: dict[str, FeatureBins],
        revision: int,
    ) -> dict[str, FeatureProfile]:
        base = Window.of_time(window.model, window.version, start, self._window)
        return self._store.rebuild_window_profiles(base, kinds, bins, revision)


def _current(
    stored: Mapping[str, tuple[int, FeatureProfile]], revision: int, reference: ReferenceProfile
) -> dict[str, FeatureProfile] | None:
    """The stored profiles of a base window if all are on the reference's bins."""
    if all(
        name in stored
        and stored[name][0] == revision
        and stored[name][1].histogram.size == f.bins.size
        and (f.kind != "numeric" or stored[name][1].offsets.size == f.bins.size)
        for name, f in reference.features.items()
    ):
        return {name: stored[name][1] for name in reference.features}
    # Profiles are missing or on an older reference's bins: profile the rows again.
    return None


def _merge_into(merged: dict[str, FeatureProfile], profiles: Mapping[str, FeatureProfile]) -> None:
    for name, profile in profiles.items():
        before = merged.get(name)
        merged[name] = profile if before is None else before.merge(profile)


def _accuracy(model: ModelDescription, labelled: list[tuple[dict[str, Any], Any]]) -> float | None:
    if model.task == "regression" or not labelled:
        return None
    right = 0
    counted = 0
    for outputs, truth in labelled:
        served = _served_class(model, outputs)
        if served is None:
            continue
        counted += 1
        right += str(served) == str(truth)
    return right / counted if counted else None


def _served_class(model: ModelDescription, outputs: dict[str, Any]) -> Any:
    if outputs.get("predicted_class") is not None:
        return outputs["predicted_class"]
    probabilities = outputs.get("probabilities")
    if probabilities:
        return max(probabilities, key=probabilities.__getitem__)
    return None
