"""The ``multivariate`` window part: drift of the numeric features taken together.

Stage: score. In: the reference (the detector is fitted once per revision on its numeric
features, :mod:`monitor.score.multivariate`) and a sample of the window's rows. Out:
:class:`~monitor.score.multivariate.MultivariateDrift`, answered as ``multivariate`` by
the window API and exported as the three families below (label ``method``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from collectors.naming import MetricName
from monitor.score.fitted import numeric_columns
from monitor.score.multivariate import (
    DomainClassifier,
    FittedDomainClassifier,
    FittedPcaReconstruction,
    MultivariateDrift,
    PcaReconstruction,
)
from monitor.score.part import PartInput, ReferenceData, Sample, WindowInputs
from monitor.score.scores import NotScored

__all__ = [
    "MULTIVARIATE",
    "MULTIVARIATE_DRIFTED",
    "MULTIVARIATE_DRIFT_SCORE",
    "MULTIVARIATE_DRIFT_THRESHOLD",
    "MultivariatePart",
]

_MV = ("model", "model_version")

MULTIVARIATE_DRIFT_SCORE: Final = MetricName(
    "sidewatch_multivariate_drift_score",
    "gauge",
    "How unlike the reference the newest closed window's inputs are taken together "
    "(method pca_reconstruction: the error of rebuilding them from the reference's main "
    "patterns; domain_classifier: how well a model tells them apart, 0.5 is not at all).",
    (*_MV, "method"),
)
MULTIVARIATE_DRIFT_THRESHOLD: Final = MetricName(
    "sidewatch_multivariate_drift_threshold",
    "gauge",
    "Score above which the inputs taken together count as drifted, learned from the reference.",
    (*_MV, "method"),
)
MULTIVARIATE_DRIFTED: Final = MetricName(
    "sidewatch_multivariate_drifted",
    "gauge",
    "1 if the newest closed window's inputs taken together drifted from the reference, else 0.",
    (*_MV, "method"),
)

Detector = FittedPcaReconstruction | FittedDomainClassifier


class MultivariatePart:
    """The multivariate detector chosen by ``SIDEWATCH_MULTIVARIATE_METHOD``."""

    name: Final = "multivariate"
    public_name: Final = "multivariate"
    inputs: Final[frozenset[PartInput]] = frozenset({"row_sample", "reference"})
    result_model: Final = MultivariateDrift
    metrics: Final = (MULTIVARIATE_DRIFT_SCORE, MULTIVARIATE_DRIFT_THRESHOLD, MULTIVARIATE_DRIFTED)

    def fit(self, reference: ReferenceData) -> Detector | NotScored:
        """The detector fitted on the reference's numeric features, or why not."""
        method = reference.options.multivariate
        if method is None:
            return NotScored(self.name, "turned off (SIDEWATCH_MULTIVARIATE_METHOD)")
        numeric = reference.numeric_columns()
        detector = PcaReconstruction() if method == "pca_reconstruction" else DomainClassifier()
        try:
            return detector.fit(numeric)
        except ValueError as exc:
            return NotScored(self.name, f"not fitted on the reference: {exc}")

    def score(self, fitted: Detector | None, inputs: WindowInputs) -> MultivariateDrift | NotScored:
        """The detector's verdict on the rows read, or why there is none."""
        assert fitted is not None  # the part needs a reference
        if inputs.count < inputs.min_events:
            return NotScored(
                self.name,
                f"fewer than {inputs.min_events} predictions (SIDEWATCH_MIN_WINDOW_EVENTS)",
            )
        rows = [f for f, _ in inputs.rows]
        try:
            return fitted.score(numeric_columns(fitted.features, rows))
        except ValueError as exc:
            return NotScored(self.name, str(exc))

    def samples(self, result: MultivariateDrift) -> Iterator[Sample]:
        """The statistic, its threshold and the verdict, labelled by the method."""
        labels = (result.method,)
        yield MULTIVARIATE_DRIFT_SCORE, labels, result.statistic
        yield MULTIVARIATE_DRIFT_THRESHOLD, labels, result.threshold
        yield MULTIVARIATE_DRIFTED, labels, result.drifted


MULTIVARIATE: Final = MultivariatePart()
"""The registered instance."""
