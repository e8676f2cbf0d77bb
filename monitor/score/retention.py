"""Retention: stored per-prediction results in, those past the horizon deleted.

A background job on the runner (:mod:`monitor.runner`): each run deletes the results
about predictions older than ``SIDEWATCH_PREDICTION_RESULTS_RETENTION_SECONDS`` a chunk
at a time until none is left or its budget is spent; what is left is its backlog, and
the runner brings it back soon.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from monitor.runner import Budget, Progress
from monitor.store import Store


class PredictionResultsRetention:
    """Deletes per-prediction results older than ``retention_seconds``.

    Args:
        store: Where the results are.
        retention_seconds: How long a result is kept, by its prediction's event time.
        clock: Current epoch time (injected in tests).
    """

    def __init__(
        self, store: Store, retention_seconds: float, clock: Callable[[], float] = time.time
    ) -> None:
        self._store = store
        self._retention = retention_seconds
        self._clock = clock
        self.deleted = 0
        """Results deleted since start."""

    def run(self, budget: Budget) -> Progress:
        """Delete a chunk at a time until nothing is past the horizon or time is up."""
        cutoff = self._clock() - self._retention
        while not budget.spent():
            count = self._store.delete_prediction_results_before(cutoff, max_chunks=1)
            self.deleted += count
            if count == 0:
                return Progress(backlog=0)
        left = self._store.count_prediction_results_before(cutoff)
        return Progress(backlog=left, yielded=left > 0)
