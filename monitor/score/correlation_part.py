"""The ``correlation`` window part: drift of the numeric features' pairwise correlations.

Stage: score. In: the reference (Fisher's z test fitted once per revision on its numeric
features, :mod:`monitor.score.drift.correlation`) and a sample of the window's rows.
Out: :class:`~monitor.score.scores.CorrelationSummary`, answered as ``correlation`` by
the window API and exported as the three families below.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from collectors.naming import MetricName
from monitor.score.drift.correlation import CorrelationDrift, FittedCorrelationDrift
from monitor.score.fitted import numeric_columns
from monitor.score.part import PartInput, ReferenceData, Sample, WindowInputs
from monitor.score.scores import CorrelationSummary, NotScored

__all__ = [
    "CORRELATION",
    "CORRELATION_CHANGE_MAX",
    "CORRELATION_DRIFTED_PAIRS",
    "CORRELATION_TESTED_PAIRS",
    "CorrelationPart",
]

_MV = ("model", "model_version")

CORRELATION_TESTED_PAIRS: Final = MetricName(
    "sidewatch_correlation_tested_pairs",
    "gauge",
    "Pairs of numeric features whose relationship (correlation) was compared with the "
    "reference in the newest closed window.",
    _MV,
)
CORRELATION_DRIFTED_PAIRS: Final = MetricName(
    "sidewatch_correlation_drifted_pairs",
    "gauge",
    "Pairs of features whose relationship (correlation) changed from the reference in the "
    "newest closed window, even where each feature alone looks the same.",
    _MV,
)
CORRELATION_CHANGE_MAX: Final = MetricName(
    "sidewatch_correlation_change_max",
    "gauge",
    "Largest change of a feature pair's correlation from the reference in the newest "
    "closed window (0 is none, 2 is a full reversal).",
    _MV,
)


class CorrelationPart:
    """Fisher's z per feature pair, under Benjamini-Hochberg control."""

    name: Final = "correlation"
    public_name: Final = "correlation"
    inputs: Final[frozenset[PartInput]] = frozenset({"row_sample", "reference"})
    result_model: Final = CorrelationSummary
    metrics: Final = (CORRELATION_TESTED_PAIRS, CORRELATION_DRIFTED_PAIRS, CORRELATION_CHANGE_MAX)

    def fit(self, reference: ReferenceData) -> FittedCorrelationDrift | NotScored:
        """The reference's correlations of its first numeric features
        (``SIDEWATCH_CORRELATION_MAX_FEATURES``), or why not."""
        numeric = reference.numeric_columns()
        test = CorrelationDrift(max_features=reference.options.correlation_max_features)
        try:
            return test.fit(numeric)
        except ValueError as exc:
            return NotScored(self.name, f"not fitted on the reference: {exc}")

    def score(
        self, fitted: FittedCorrelationDrift | None, inputs: WindowInputs
    ) -> CorrelationSummary | NotScored:
        """The window's correlations against the reference's, or why not."""
        assert fitted is not None  # the part needs a reference
        if inputs.count < inputs.min_events:
            return NotScored(
                self.name,
                f"fewer than {inputs.min_events} predictions (SIDEWATCH_MIN_WINDOW_EVENTS)",
            )
        rows = [f for f, _ in inputs.rows]
        try:
            result = fitted.score(numeric_columns(fitted.features, rows))
        except ValueError as exc:
            return NotScored(self.name, str(exc))
        return CorrelationSummary.of(result, sampled=len(rows) < inputs.count)

    def samples(self, result: CorrelationSummary) -> Iterator[Sample]:
        """The pairs tested, the pairs drifted, the largest change."""
        yield CORRELATION_TESTED_PAIRS, (), result.tested_pairs
        yield CORRELATION_DRIFTED_PAIRS, (), result.drifted_pairs
        yield CORRELATION_CHANGE_MAX, (), result.change_max


CORRELATION: Final = CorrelationPart()
"""The registered instance."""
