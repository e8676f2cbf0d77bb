"""Scores one window of one model version from stored profiles and rows.

Drift reads the window's feature profiles (kept up to date at ingest) and the
reference's profile, so it costs what the features and bins cost, not the events.
Where a profile cannot settle a test (its verdict could go either way, or its value is
known only to more than 1e-3: :func:`~monitor.score.drift.registry.needs_raw_values`),
that feature's test is computed from the window's stored values and the reference's
(:mod:`monitor.score.exact`), so every verdict and value is the exact one. The test of
each feature is chosen as Evidently 0.7 chooses it, unless configured; the p-value
tests of a window are then put under Benjamini-Hochberg control, and the share of
drifted features gives the dataset verdict.

The model's outputs (served class, score, value, per-class probabilities) are drift-
tested the same way, from their profiles over every row of the window (read chunk by
chunk), never from a sample.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any, get_args

import numpy as np
from pydantic import BaseModel

from collectors.contract import ModelDescription
from monitor.core.profile import (
    FeatureBins,
    FeatureProfile,
    Kind,
    ReferenceFeature,
    ReferenceProfile,
)
from monitor.core.windows import Window
from monitor.errors import ConfigError
from monitor.score.accuracy import ClassificationAccuracy
from monitor.score.drift.base import DriftScore
from monitor.score.drift.multiple import benjamini_hochberg
from monitor.score.drift.profiled import (
    DEFAULT_COARSE_BINS,
    EXACT_TOLERANCE,
    choice_may_change,
)
from monitor.score.drift.registry import AUTO, check_test_name, choose_test, get_drift_test
from monitor.score.drift.verdict import DEFAULT_DRIFT_SHARE, dataset_drift
from monitor.score.exact import RawValues, ReferenceColumns, settle, spelled
from monitor.score.fitted import (
    FittedReference,
    ScoringOptions,
    all_output_profiles,
    all_output_values,
    fit_reference,
    label_value,
    output_profiles,
)
from monitor.score.part import (
    AnyPart,
    ReferenceData,
    WindowInputs,
    check_part_names,
)
from monitor.score.parts import PARTS
from monitor.score.results import DEFINITION, FeatureDrift, WindowResult
from monitor.score.scores import (
    NotScored,
    OutputDrift,
    ScorePart,
    WindowScores,
    finite_or_none,
)
from monitor.store import ReferenceInfo, Store

logger = logging.getLogger("sidewatch.score")


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
        options: Settings of the parts beyond feature drift (data quality, output and
            label drift, correlation and multivariate drift).
        parts: Names of the registered window parts to run
            (:data:`monitor.score.parts.PARTS`); None runs every one registered now.
        model_parts: Per model name, the parts to run instead of ``parts``.

    Raises:
        ConfigError: A configured test name or part name is unknown.
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
        options: ScoringOptions | None = None,
        parts: Sequence[str] | None = None,
        model_parts: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._store = store
        self._registered: dict[str, AnyPart] = check_part_names(PARTS, parts)
        self._model_parts = {
            name: check_part_names(PARTS, names) for name, names in (model_parts or {}).items()
        }
        self._window = window_seconds
        self._min_events = min_window_events
        self._psi_threshold = psi_threshold
        self._psi_bins = psi_bins
        self._drift_tests = dict(drift_tests or {})
        for name in [drift_test, *self._drift_tests.values()]:
            check_test_name(name)
        self._drift_test = drift_test
        self._fdr = fdr
        self._drift_share = drift_share
        self._references: dict[tuple[str, str, int], ReferenceProfile | None] = {}
        self._options = options or ScoringOptions()
        self._fits: dict[tuple[str, str], FittedReference] = {}
        """Per (model, version): the window parts fitted on its newest reference."""
        self._reference_columns = ReferenceColumns(store)

    def score(self, model: ModelDescription, window: Window) -> WindowResult:
        """Score one window of ``model`` (a time window, a split value's, or a count block).

        Drift reads the window's stored profiles (a base time window), their merge (a
        longer time window), or profiles built from its rows (a split value, a block);
        counts, latencies and labels are read from the window's rows.
        """
        version = window.version
        count, latencies = self._store.window_latencies(window)
        p50, p95, p99 = latencies.quantiles([0.5, 0.95, 0.99]) or (None, None, None)
        reference = self._store.latest_reference(model.name, version)
        drift: tuple[FeatureDrift, ...] = ()
        fitted: ReferenceProfile | None = None
        profiles: dict[str, FeatureProfile] | None = None
        if reference is not None and count:
            fitted = self._reference(model, version, reference.revision, reference.profile)
            if fitted is not None:
                profiles = self._window_profiles(model, window, reference.revision, fitted)
                categories = [n for n, f in fitted.features.items() if f.kind != "numeric"]
                raw = self.feature_values(window, reference.revision, categories)
                drift = self._drift(fitted, profiles, self._drift_tests, raw)
        verdict = (
            dataset_drift({d.feature: d.drifted for d in drift}, self._drift_share)
            if drift
            else None
        )
        labelled = self._store.labelled_in_window(window)
        sample = self._store.sample_window(window, self._options.sample_rows)
        scores = self._parts(model, window, reference, fitted, profiles, labelled, count, sample[1])
        inputs = WindowInputs(
            model=model,
            window=window,
            count=count,
            min_events=self._min_events,
            rows=sample[1],
            labelled=labelled,
            feature_reference=fitted,
            feature_profiles=profiles,
        )
        results, skipped = self._registry_parts(inputs, reference, self._parts_of(model.name))
        left_out = self._drift_left_out(reference, fitted, profiles, drift, count)
        # Parts left out are listed in the parts' order (the hand-wired ones first, then
        # the registry's), each part's reasons in the order they were found.
        order: dict[str, int] = {}
        for name in (*get_args(ScorePart), *self._parts_of(model.name)):
            order.setdefault(name, len(order))
        not_scored = sorted(
            (*left_out, *scores.not_scored, *skipped), key=lambda n: order.get(n.part, len(order))
        )
        scores = replace(scores, parts=results, not_scored=tuple(not_scored))
        return WindowResult(
            model=model.name,
            model_version=version,
            window_start=window.start,
            window_end=window.end,
            definition=DEFINITION,
            predictions=count,
            labelled=len(labelled),
            accuracy=scores.accuracy.accuracy
            if isinstance(scores.accuracy, ClassificationAccuracy)
            else None,
            latency_p50_seconds=p50,
            latency_p95_seconds=p95,
            latency_p99_seconds=p99,
            reference_revision=reference.revision if reference else None,
            drift=drift,
            scored_at=time.time(),
            drift_share=verdict.share if verdict else None,
            dataset_drifted=verdict.drifted if verdict else None,
            segment=window.split_label,
            window_kind=window.kind,
            block=window.block,
            scores=scores,
        )

    def _drift_left_out(
        self,
        reference: ReferenceInfo | None,
        fitted: ReferenceProfile | None,
        profiles: Mapping[str, FeatureProfile] | None,
        drift: Sequence[FeatureDrift],
        count: int,
    ) -> tuple[NotScored, ...]:
        """Why feature drift, or some features' drift, was not scored."""
        if reference is None:
            return (NotScored("feature_drift", "no reference was uploaded for this version"),)
        if not count:
            return (NotScored("feature_drift", "the window has no predictions"),)
        if fitted is None or profiles is None:
            return (NotScored("feature_drift", "the reference's profile could not be read"),)
        setting = f"SIDEWATCH_MIN_WINDOW_EVENTS={self._min_events}"
        if count < self._min_events:
            why = f"the window has {count} predictions, fewer than {setting}"
            return (NotScored("feature_drift", why),)
        scored = {d.feature for d in drift}
        left_out = []
        for name in fitted.features:
            if name in scored:
                continue
            have = profiles[name].count if name in profiles else 0
            why = (
                f"{name}: the window has {have} non-missing values, fewer than {setting}"
                if have < self._min_events
                else f"{name}: the test failed on this window (see the monitor's log)"
            )
            left_out.append(NotScored("feature_drift", why))
        return tuple(left_out)

    def drift(
        self,
        reference: ReferenceProfile,
        window: Mapping[str, FeatureProfile],
        raw: RawValues | None = None,
    ) -> tuple[FeatureDrift, ...]:
        """Each feature's drift from its window profile, under multiple-testing control.

        Args:
            reference: The reference's profile.
            window: The window's feature profiles on its bins.
            raw: Where the raw values are read for a test that the profiles cannot
                settle; None keeps every profile-based result (each with its
                ``error_bound``).
        """
        return self._drift(reference, window, self._drift_tests, raw)

    def feature_values(
        self, window: Window, revision: int, categorical: Collection[str] = ()
    ) -> RawValues:
        """Raw feature values: the window's stored rows, the reference's Parquet (the
        features named in ``categorical`` read as categories)."""
        columns = self._reference_columns

        def reference(names: Sequence[str]) -> Mapping[str, np.ndarray]:
            wanted = {n: n for n in names}
            return columns.read(window.model, window.version, revision, wanted, categorical)

        def values(names: Sequence[str]) -> Mapping[str, Sequence[Any]]:
            return self._store.window_feature_values(window, names)

        return RawValues(reference, values)

    def _drift(
        self,
        reference: ReferenceProfile,
        window: Mapping[str, FeatureProfile],
        configured: Mapping[str, str],
        raw: RawValues | None = None,
    ) -> tuple[FeatureDrift, ...]:
        scores: dict[str, DriftScore] = {}
        for name, ref in reference.features.items():
            current = window.get(name)
            if current is None or current.count < self._min_events:
                continue
            test_name = self._choose(name, ref, configured)
            test = get_drift_test(test_name)
            threshold = self._psi_threshold if test_name == "psi" else test.default_threshold
            try:
                scores[name] = test.score(ref, current, threshold, self._psi_bins)
            except ValueError:
                logger.exception("drift of feature %r could not be scored", name)
        if raw is not None:
            # Adjusted p-values move each other's verdicts: under control, a p-value is
            # taken from a profile only where the profile gives it exactly.
            tolerance = 0.0 if self._fdr is not None else EXACT_TOLERANCE
            automatic = self._drift_test == AUTO
            rechoose = [
                name
                for name in scores
                if automatic
                and name not in configured
                and choice_may_change(reference.features[name], window[name])
            ]
            scores = settle(reference, scores, raw, p_value_tolerance=tolerance, rechoose=rechoose)
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
                    statistic=finite_or_none(s.statistic),
                    adjusted_p_value=adj,
                    error_bound=s.error_bound,
                )
            )
        return tuple(results)

    def _parts(
        self,
        model: ModelDescription,
        window: Window,
        reference: ReferenceInfo | None,
        features: ReferenceProfile | None,
        profiles: Mapping[str, FeatureProfile] | None,
        labelled: Sequence[tuple[Mapping[str, Any], Any]],
        count: int,
        rows: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]],
    ) -> WindowScores:
        """Every part of a window's scores beyond feature drift; each part left out
        says why.

        Args:
            model: The model.
            window: The window.
            reference: The version's newest reference, if any.
            features: Its feature profiles (their bins), if read.
            profiles: The window's feature profiles on those bins, if read.
            labelled: The window's labelled predictions.
            count: Predictions in the window.
            rows: ``(features, outputs)`` of the window's rows read: all of them, or a
                uniform sample of ``sample_rows``.
        """
        not_scored: list[NotScored] = []
        window_parts: tuple[ScorePart, ...] = (
            "prediction_drift",
            "label_drift",
        )
        if not count or not rows:
            not_scored += [NotScored(p, "the window has no predictions") for p in window_parts]
            return WindowScores(not_scored=tuple(not_scored))
        fit = None if reference is None else self._fit(model, reference)
        if fit is None:
            why = (
                "no reference was uploaded for this version"
                if reference is None
                else "the reference's data could not be read"
            )
            not_scored += [NotScored(p, why) for p in window_parts]
            return WindowScores(not_scored=tuple(not_scored))
        assert reference is not None  # fitted on it
        not_scored.extend(fit.not_fitted)
        prediction_drift = None
        if fit.outputs.features:
            # Every row's outputs, not the sample's: read chunk by chunk into profiles.
            chunks = self._store.window_outputs(window)
            served = all_output_profiles(model, fit.outputs, chunks)
            raw = self._output_values(model, window, reference, fit)
            prediction_drift = self._output_drift(fit.outputs, served, raw, not_scored)
        label_drift = None
        if fit.label.features and not labelled:
            not_scored.append(NotScored("label_drift", "no prediction of the window has a label"))
        elif fit.label.features:
            values = {"label": [label_value(model, truth) for _, truth in labelled]}
            labels = output_profiles(fit.label, values)
            raw = self._output_values(model, window, reference, fit, values)
            found = self._output_drift(fit.label, labels, raw, not_scored, "label_drift")
            label_drift = found[0] if found else None
        return WindowScores(
            prediction_drift=prediction_drift,
            label_drift=label_drift,
            not_scored=tuple(not_scored),
        )

    def _parts_of(self, model: str) -> dict[str, AnyPart]:
        """The registered parts that run for ``model``."""
        return self._model_parts.get(model, self._registered)

    def _registry_parts(
        self,
        inputs: WindowInputs,
        reference: ReferenceInfo | None,
        parts: Mapping[str, AnyPart],
    ) -> tuple[dict[str, BaseModel], tuple[NotScored, ...]]:
        """The registered parts' results, each given only the inputs it declared, and
        why each part left out was.

        Args:
            inputs: Everything read for the window (narrowed per part).
            reference: The version's newest reference, if any.
            parts: The parts to run.
        """
        results: dict[str, BaseModel] = {}
        skipped: list[NotScored] = []
        fit: FittedReference | None = None
        for name, part in parts.items():
            needs = part.inputs
            if "row_sample" in needs and (not inputs.count or not inputs.rows):
                skipped.append(NotScored(name, "the window has no predictions"))
                continue
            if "labelled" in needs and not inputs.labelled:
                skipped.append(NotScored(name, "no prediction of the window has a label"))
                continue
            fitted = None
            if "reference" in needs:
                if reference is None:
                    skipped.append(NotScored(name, "no reference was uploaded for this version"))
                    continue
                fit = fit or self._fit(inputs.model, reference)
                if fit is None:
                    skipped.append(NotScored(name, "the reference's data could not be read"))
                    continue
                fitted = fit.parts.get(name)
                if isinstance(fitted, NotScored):
                    skipped.append(fitted)
                    continue
            given = replace(
                inputs,
                rows=inputs.rows if "row_sample" in needs else (),
                labelled=inputs.labelled if "labelled" in needs else (),
                feature_reference=inputs.feature_reference if "feature_profiles" in needs else None,
                feature_profiles=inputs.feature_profiles if "feature_profiles" in needs else None,
            )
            result = part.score(fitted, given)
            if isinstance(result, NotScored):
                skipped.append(result)
            else:
                results[name] = result
        return results, tuple(skipped)

    def _output_values(
        self,
        model: ModelDescription,
        window: Window,
        reference: ReferenceInfo,
        fit: FittedReference,
        window_values: Mapping[str, Sequence[Any]] | None = None,
    ) -> RawValues:
        """Raw output (or label) values: the reference's columns (a class spelled as
        the served class is), and the window's values given or else read again from
        its rows."""
        columns = self._reference_columns
        fitted = {**fit.outputs.features, **fit.label.features}
        classes = [name for name, f in fitted.items() if f.kind != "numeric"]

        def from_reference(names: Sequence[str]) -> Mapping[str, np.ndarray]:
            wanted = {n: fit.columns[n] for n in names if n in fit.columns}
            found = columns.read(model.name, reference.version, reference.revision, wanted, classes)
            for name in set(found) & set(classes):
                found[name] = spelled(label_value(model, v) for v in found[name])
            return found

        def from_window(names: Sequence[str]) -> Mapping[str, Sequence[Any]]:
            if window_values is not None:
                return {n: window_values[n] for n in names if n in window_values}
            return all_output_values(model, self._store.window_outputs(window), names)

        return RawValues(from_reference, from_window)

    def _output_drift(
        self,
        reference: ReferenceProfile,
        window: Mapping[str, FeatureProfile],
        raw: RawValues,
        not_scored: list[NotScored],
        part: ScorePart = "prediction_drift",
    ) -> tuple[OutputDrift, ...]:
        """The outputs' (or the label's) drift: their tests chosen and thresholded as the
        features' are (a test configured for every feature applies; per-feature ones do
        not), and the p-value tests of the family under Benjamini-Hochberg control."""
        scored = self._drift(reference, window, {}, raw)
        for name in reference.features.keys() - {d.feature for d in scored}:
            have = window[name].count if name in window else 0
            not_scored.append(
                NotScored(part, f"{name}: {have} values, fewer than {self._min_events}")
            )
        return tuple(
            OutputDrift(
                output=d.feature,
                test=d.test,
                value=d.value,
                threshold=d.threshold,
                drifted=d.drifted,
                current_count=d.current_count,
                statistic=finite_or_none(d.statistic),
                adjusted_p_value=d.adjusted_p_value,
                error_bound=d.error_bound,
            )
            for d in scored
        )

    def _fit(self, model: ModelDescription, reference: ReferenceInfo) -> FittedReference | None:
        """The window parts fitted on the version's newest reference, fitted once per
        revision from its stored Parquet (an older revision's fit is dropped)."""
        key = (model.name, reference.version)
        cached = self._fits.get(key)
        if cached is not None and cached.revision == reference.revision:
            return cached
        found = self._store.reference_data(model.name, reference.version)
        if found is None or found[0].revision != reference.revision:
            return None
        import io

        import pandas as pd

        began = time.perf_counter()
        frame = pd.read_parquet(io.BytesIO(found[1]), engine="pyarrow")
        fitted = fit_reference(model, frame, reference.revision, self._options)
        data = ReferenceData(model, reference.revision, frame, self._options)
        fitted = replace(
            fitted,
            parts={
                name: part.fit(data)
                for name, part in self._parts_of(model.name).items()
                if "reference" in part.inputs
            },
        )
        self._fits[key] = fitted
        logger.info(
            "fitted the window parts on reference %s/%s revision %d (%d rows) in %.2f s",
            model.name,
            reference.version,
            reference.revision,
            len(frame),
            time.perf_counter() - began,
        )
        return fitted

    def _choose(self, feature: str, ref: ReferenceFeature, tests: Mapping[str, str]) -> str:
        configured = tests.get(feature)
        if configured is None and self._drift_test != AUTO:
            configured = self._drift_test
        try:
            return choose_test(ref.kind, ref.profile.count, ref.distinct, configured).test.name
        except ConfigError:
            if feature in tests:
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
        if window.kind != "time" or window.split is not None:
            # Splits and blocks keep no profiles at ingest: profile their rows now.
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
