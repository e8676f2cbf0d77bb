"""The scoring loop: marks of new data in, fresh window results out.

Ingest marks the windows its events and labels touched; a background thread scores
each marked window, stores the result and keeps, per model version, the newest closed
window's result for the exporter. Windows are tumbling: ``[k*W, (k+1)*W)`` in event
time, so a late event or label lands in (and rescores) the window it belongs to.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from monitor.errors import NotFoundError
from monitor.score.results import WindowResult
from monitor.score.scorer import WindowScorer
from monitor.score.windows import Window, window_start
from monitor.store import Store

logger = logging.getLogger("sidewatch.score")

WindowKey = tuple[str, str, float]
"""(model, version, window start)."""


class ScoringLoop:
    """Scores marked windows in one background thread.

    Args:
        store: The monitor's store.
        scorer: Computes one window's result.
        window_seconds: Window length.
        interval_seconds: Pause between passes.
        clock: Returns the current epoch time (injected in tests).
    """

    def __init__(
        self,
        store: Store,
        scorer: WindowScorer,
        *,
        window_seconds: int,
        interval_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._scorer = scorer
        self._window = window_seconds
        self._interval = interval_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._dirty: set[WindowKey] = set()
        self._open: set[WindowKey] = set()
        """Windows scored while still open: scored once more when they close."""
        self._latest: dict[tuple[str, str], WindowResult] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_success: float | None = None
        self.passes = 0
        self.failures = 0

    def mark(self, model: str, version: str, timestamps: Iterable[float]) -> None:
        """Note that windows holding these event times have new data."""
        starts = {window_start(ts, self._window) for ts in timestamps}
        with self._lock:
            self._dirty.update((model, version, s) for s in starts)

    def latest(self) -> dict[tuple[str, str], WindowResult]:
        """Per (model, version): the result of the newest closed window scored."""
        with self._lock:
            return dict(self._latest)

    def start(self) -> None:
        """Mark the recent windows (they may have changed while down) and start."""
        recent = self._store.windows_with_predictions(self._clock() - 2 * self._window)
        for model, version, newest in recent:
            self.mark(model, version, [newest, newest - self._window])
        self._thread = threading.Thread(target=self._run, name="sidewatch-scoring", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current pass."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def run_once(self) -> list[WindowResult]:
        """Score every marked window now; returns the results."""
        now = self._clock()
        with self._lock:
            closed = {k for k in self._open if k[2] + self._window <= now}
            self._open -= closed
            dirty, self._dirty = self._dirty | closed, set()
        results = []
        for model_name, version, start in sorted(dirty, key=lambda k: k[2]):
            try:
                model = self._store.get_model(model_name)
            except NotFoundError:
                continue
            window = Window.of_time(model_name, version, start, self._window)
            result = self._scorer.score(model, window)
            self._store.save_window_result(result)
            results.append(result)
            if result.window_end <= now:
                self._publish(result)
            else:
                with self._lock:
                    self._open.add((model_name, version, start))
        self.passes += 1
        self.last_success = self._clock()
        return results

    def _publish(self, result: WindowResult) -> None:
        key = (result.model, result.model_version)
        with self._lock:
            current = self._latest.get(key)
            if current is None or current.window_start <= result.window_start:
                self._latest[key] = result

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.run_once()
            except Exception:  # keep scoring: one bad pass must not stop the loop
                self.failures += 1
                logger.exception("scoring pass failed")
