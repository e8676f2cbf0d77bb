"""Scores one window of one model version from the rows the store holds."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from collectors.contract import ModelDescription
from monitor.score.psi import FittedPsi
from monitor.score.results import DEFINITION, FeatureDrift, WindowResult
from monitor.store import Store


class WindowScorer:
    """Computes a :class:`WindowResult`: counts, latency, PSI per feature, accuracy.

    Args:
        store: Where events, labels and reference profiles are read.
        psi_threshold: PSI at or above which a feature counts as drifted.
        min_window_events: Fewest non-missing values a feature needs in a window
            before its drift is scored; below it the feature is left out.
    """

    def __init__(self, store: Store, *, psi_threshold: float, min_window_events: int) -> None:
        self._store = store
        self._threshold = psi_threshold
        self._min_events = min_window_events
        self._fitted: dict[tuple[str, str, int], dict[str, FittedPsi]] = {}

    def score(
        self, model: ModelDescription, version: str, start: float, end: float
    ) -> WindowResult:
        """Score ``[start, end)`` for ``model`` at ``version``."""
        rows = self._store.predictions_in_window(model.name, version, start, end)
        latencies = np.array([lat for _, _, lat in rows if lat is not None], dtype=float)
        p50 = p95 = p99 = None
        if latencies.size:
            p50, p95, p99 = (float(q) for q in np.quantile(latencies, [0.5, 0.95, 0.99]))
        reference = self._store.latest_reference(model.name, version)
        drift: tuple[FeatureDrift, ...] = ()
        if reference is not None:
            fitted = self._fitted_for(model.name, version, reference.revision, reference.profile)
            drift = self._drift(fitted, [features for features, _, _ in rows])
        labelled = self._store.labelled_in_window(model.name, version, start, end)
        return WindowResult(
            model=model.name,
            model_version=version,
            window_start=start,
            window_end=end,
            definition=DEFINITION,
            predictions=len(rows),
            labelled=len(labelled),
            accuracy=_accuracy(model, labelled),
            latency_p50_seconds=p50,
            latency_p95_seconds=p95,
            latency_p99_seconds=p99,
            reference_revision=reference.revision if reference else None,
            drift=drift,
            scored_at=time.time(),
        )

    def _fitted_for(
        self, model: str, version: str, revision: int, profile: dict[str, Any]
    ) -> dict[str, FittedPsi]:
        key = (model, version, revision)
        if key not in self._fitted:
            self._fitted[key] = {
                name: FittedPsi.from_json(data) for name, data in profile["features"].items()
            }
        return self._fitted[key]

    def _drift(
        self, fitted: dict[str, FittedPsi], features: list[dict[str, Any]]
    ) -> tuple[FeatureDrift, ...]:
        results = []
        for name, bins in fitted.items():
            values = [v for row in features if (v := row.get(name)) is not None]
            if len(values) < self._min_events:
                continue
            value = bins.score(values)
            results.append(
                FeatureDrift(
                    feature=name,
                    test="psi",
                    value=value,
                    threshold=self._threshold,
                    drifted=value >= self._threshold,
                    current_count=len(values),
                )
            )
        return tuple(results)


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
