"""Drift statistics: one feature's reference and window in, a drift verdict out.

Stage: score. In: a feature's reference and a window, as profiles or as raw values (or,
for correlation drift, several numeric features' values by row). Out: frozen results.

- Univariate tests registered by Evidently's names in :data:`DRIFT_TESTS` (``ks``,
  ``chisquare``, ``z``, ``psi``, ``jensenshannon``, ``wasserstein``, ``hellinger``),
  one entry a name, computed on profiles (``score(reference, window, threshold)``) or
  on raw values (the :class:`DriftTest` protocol: ``fit(reference, kind)`` then
  ``score(current)``), each giving a :class:`DriftScore`; :func:`get_drift_test`
  looks one up by name (its error lists the valid ones) and :func:`choose_test` picks
  one as Evidently 0.7 does.
- :func:`dataset_drift`: the dataset verdict from the share of drifted features.
- :func:`benjamini_hochberg`: false-discovery-rate control across features.
- :class:`CorrelationDrift`: pairs of features whose correlation changed.
"""

from monitor.score.drift.base import DriftScore, DriftTest, FeatureKind, FittedDriftTest
from monitor.score.drift.correlation import (
    CorrelationDrift,
    CorrelationDriftResult,
    FittedCorrelationDrift,
    PairCorrelationDrift,
    fisher_z,
)
from monitor.score.drift.multiple import AdjustedPValue, FdrControl, adjust_bh, benjamini_hochberg
from monitor.score.drift.registry import DRIFT_TESTS, DriftTestChoice, choose_test, get_drift_test
from monitor.score.drift.verdict import DEFAULT_DRIFT_SHARE, DatasetDrift, dataset_drift

__all__ = [
    "DEFAULT_DRIFT_SHARE",
    "DRIFT_TESTS",
    "AdjustedPValue",
    "CorrelationDrift",
    "CorrelationDriftResult",
    "DatasetDrift",
    "DriftScore",
    "DriftTest",
    "DriftTestChoice",
    "FdrControl",
    "FeatureKind",
    "FittedCorrelationDrift",
    "FittedDriftTest",
    "PairCorrelationDrift",
    "adjust_bh",
    "benjamini_hochberg",
    "choose_test",
    "dataset_drift",
    "fisher_z",
    "get_drift_test",
]
