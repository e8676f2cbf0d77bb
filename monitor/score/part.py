"""The window part protocol: one small interface for every result scored per window.

Stage: score. In: a reference revision (once per revision, :meth:`WindowPart.fit`) and,
per window, only the inputs a part declares (:data:`PartInput`, gathered by the scorer
into :class:`WindowInputs`). Out: one frozen pydantic result per window
(:meth:`WindowPart.score`), which serialises itself: the store keeps its JSON, the API
answers it (the OpenAPI schema comes from its model) and the exporter reads its
Prometheus samples from it (:meth:`WindowPart.samples`).

A part is registered by name in a plain dict (:data:`monitor.score.parts.PARTS`); the
scorer runs the registered parts that the configuration names (default: all), and gives
each only what it declared.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

import numpy as np
from pydantic import BaseModel

from collectors.contract import ModelDescription
from collectors.naming import MetricName
from monitor.core.profile import FeatureProfile, ReferenceProfile
from monitor.core.windows import Window
from monitor.errors import ConfigError
from monitor.score.fitted import ScoringOptions
from monitor.score.scores import NotScored

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "AnyPart",
    "PartInput",
    "ReferenceData",
    "Sample",
    "WindowInputs",
    "WindowPart",
    "check_part_names",
    "get_part",
]

PartInput = Literal["row_sample", "labelled", "feature_profiles", "reference"]
"""What a part may ask for:

- ``row_sample``: ``(features, outputs)`` of the window's rows read (all of them, or a
  uniform sample of ``SIDEWATCH_SCORE_SAMPLE_ROWS``); the part is not scored on a window
  without predictions.
- ``labelled``: ``(outputs, label)`` of the window's labelled predictions; the part is
  not scored on a window without labels.
- ``feature_profiles``: the reference's feature profiles and the window's on their bins,
  where they were read (None otherwise: the part falls back on the rows).
- ``reference``: the part is fitted on the version's newest reference revision
  (:meth:`WindowPart.fit`); without one it is not scored.
"""

R = TypeVar("R", bound=BaseModel)
F = TypeVar("F")

Sample = tuple[MetricName, tuple[str, ...], float | int | bool | None]
"""One Prometheus sample of a part: its family, its label values after ``model`` and
``model_version``, and its value (None: no sample)."""


@dataclass(frozen=True, slots=True)
class ReferenceData:
    """A reference revision as a part is fitted on it."""

    model: ModelDescription
    revision: int
    frame: pd.DataFrame
    """The reference's table, as uploaded (read once per revision from its Parquet)."""
    options: ScoringOptions
    """The settings of the window parts (``SIDEWATCH_SCORE_SAMPLE_ROWS``,
    ``SIDEWATCH_MULTIVARIATE_METHOD``, ...)."""

    def numeric_columns(self) -> dict[str, np.ndarray]:
        """The reference's numeric features as float arrays (missing values NaN), in
        the model's order."""
        return {
            s.name: self.frame[s.name].to_numpy(dtype=np.float64, na_value=np.nan)
            for s in self.model.features
            if s.type == "numeric"
        }


@dataclass(frozen=True, slots=True)
class WindowInputs:
    """What a part is given to score one window: always the model, the window and its
    prediction count; the rest only where the part declared it (else empty or None)."""

    model: ModelDescription
    window: Window
    count: int
    """Predictions in the window."""
    min_events: int
    """``SIDEWATCH_MIN_WINDOW_EVENTS``: fewest predictions a statistic needs."""
    rows: Sequence[tuple[Mapping[str, Any], Mapping[str, Any]]] = ()
    labelled: Sequence[tuple[Mapping[str, Any], Any]] = ()
    feature_reference: ReferenceProfile | None = None
    feature_profiles: Mapping[str, FeatureProfile] | None = None


class WindowPart(Protocol[F, R]):
    """One result scored per window (the shape of prometheus_client's ``Collector``:
    small, and discovered through a registry rather than wired by hand)."""

    @property
    def name(self) -> str:
        """The part's name: its key in the registry, the stored scores and
        ``not_scored``."""
        ...

    @property
    def public_name(self) -> str:
        """Its field in the window API's answer (usually :attr:`name`)."""
        ...

    @property
    def inputs(self) -> frozenset[PartInput]:
        """What it needs (see :data:`PartInput`)."""
        ...

    @property
    def result_model(self) -> type[R]:
        """The frozen pydantic model of its result: stored, answered and documented."""
        ...

    @property
    def metrics(self) -> tuple[MetricName, ...]:
        """The Prometheus families its samples belong to."""
        ...

    def fit(self, reference: ReferenceData) -> F | NotScored:
        """What it learns from a reference revision, or why it cannot (called once per
        revision, and only when ``reference`` is among its inputs)."""
        ...

    def score(self, fitted: F | None, inputs: WindowInputs) -> R | NotScored:
        """Its result for one window (``fitted`` is None unless it needs a reference)."""
        ...

    def samples(self, result: R) -> Iterable[Sample]:
        """Its Prometheus samples from a result (read at scrape time)."""
        ...


AnyPart = WindowPart[Any, Any]
"""A registered part of any fitted and result type."""


def get_part(parts: Mapping[str, AnyPart], name: str) -> AnyPart:
    """The part registered as ``name``.

    Raises:
        ConfigError: No part has that name; the message lists the valid ones.
    """
    try:
        return parts[name]
    except KeyError:
        valid = ", ".join(sorted(parts))
        raise ConfigError(
            f"unknown window part {name!r} (SIDEWATCH_WINDOW_PARTS); valid parts: {valid}"
        ) from None


def check_part_names(
    parts: Mapping[str, AnyPart], names: Sequence[str] | None
) -> dict[str, AnyPart]:
    """The parts to run, in the registry's order: those named, or all when ``names`` is
    None.

    Raises:
        ConfigError: A name is not registered; the message lists the valid ones.
    """
    if names is None:
        return dict(parts)
    chosen = {name: get_part(parts, name) for name in names}
    return {name: part for name, part in parts.items() if name in chosen}
