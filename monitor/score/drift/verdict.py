"""The dataset-level verdict: drift when a large enough share of features drifted."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["DEFAULT_DRIFT_SHARE", "DatasetDrift", "dataset_drift"]

DEFAULT_DRIFT_SHARE = 0.5
"""Evidently's default share of drifted features that makes the dataset drifted."""


@dataclass(frozen=True, slots=True)
class DatasetDrift:
    """Whether a window's features drifted as a whole."""

    feature_count: int
    drifted_features: tuple[str, ...]
    """Names of the drifted features, sorted."""
    share: float
    """``len(drifted_features) / feature_count``."""
    threshold: float
    drifted: bool
    """``share >= threshold``, as Evidently decides it."""


def dataset_drift(
    drifted: Mapping[str, bool], drift_share: float = DEFAULT_DRIFT_SHARE
) -> DatasetDrift:
    """Decide whether the dataset drifted from each feature's verdict.

    Args:
        drifted: Feature name to whether it drifted (a test's own verdict, or the
            Benjamini-Hochberg one from :func:`~monitor.score.drift.benjamini_hochberg`).
        drift_share: The share of drifted features at which the dataset drifts.

    Raises:
        ValueError: No features, or a share outside ``[0, 1]``.
    """
    if not drifted:
        raise ValueError("a dataset verdict needs at least one feature")
    if not 0 <= drift_share <= 1:
        raise ValueError(f"drift_share must lie in [0, 1], got {drift_share!r}")
    names = tuple(sorted(name for name, flag in drifted.items() if flag))
    share = len(names) / len(drifted)
    return DatasetDrift(len(drifted), names, share, drift_share, share >= drift_share)
