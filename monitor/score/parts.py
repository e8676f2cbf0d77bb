"""The registry of window parts: a plain dict, part name to part.

Stage: score. In: the parts (:class:`~monitor.score.part.WindowPart`). Out:
:data:`PARTS`, which the scorer runs (those ``SIDEWATCH_WINDOW_PARTS`` names, default
all), the store's results are read back with, the window API builds its answer's schema
from and the exporter takes its families from. A new part is one module and one entry
here (or, in a test, ``monkeypatch.setitem(PARTS, part.name, part)``).

Parts not yet on the registry are still scored by
:meth:`~monitor.score.scorer.WindowScorer` by hand: feature drift, and
prediction and label drift.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel

from monitor.score.accuracy_part import ACCURACY
from monitor.score.correlation_part import CORRELATION
from monitor.score.multivariate_part import MULTIVARIATE
from monitor.score.part import AnyPart
from monitor.score.quality_part import QUALITY
from monitor.score.served import SERVED

__all__ = ["PARTS", "result_models"]

PARTS: dict[str, AnyPart] = {
    part.name: part for part in (ACCURACY, QUALITY, CORRELATION, MULTIVARIATE, SERVED)
}
"""Every registered window part, by name, in the order they are scored and answered."""


def result_models(parts: Mapping[str, AnyPart] | None = None) -> dict[str, type[BaseModel]]:
    """Each part's result model, by part name (default: the registry's, read now)."""
    return {name: part.result_model for name, part in (PARTS if parts is None else parts).items()}
