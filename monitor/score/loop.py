"""The scoring loop: marks of new data in, fresh window results out.

Ingest marks what its events and labels touched; a background thread scores each
marked window, stores the result and keeps, per model version, the newest closed base
window's results (the whole version's and each split value's) for the exporter.

- Base time windows are tumbling, ``[k*W, (k+1)*W)`` in event time, so a late event
  or label lands in (and rescores) the window it belongs to. An open window is scored
  on every pass that brings it data, and once more when it closes.
- Rollups, longer time windows (multiples of W, aligned to the epoch), are scored when
  they close and again when a late event or label lands in one, at most once per base
  window length (labels that trickle in for a day would otherwise rescore the day every
  pass); their drift comes from the merge of their base windows' stored profiles.
- Splits: when a base window closes (or changes after, at most once per base window
  length), the most frequent values of each split are scored as windows of their own
  (:class:`monitor.core.windows.Split`): of each configured segment key, the variants
  and the pipeline stages (where turned on), and the groups of each categorical
  sensitive attribute (where turned on); the other values are not scored but counted,
  and the count is exported. Numeric and boolean sensitive attributes are left out:
  a numeric one would need bins that the model description does not declare (the
  reference's quantile bins move with each revision, and with them the groups), and a
  boolean's JSON value reads differently on the two backends (``true`` on PostgreSQL,
  ``1`` on SQLite); declare such an attribute categorical, with text values, to
  measure it. A window whose events carry no variant (stage, group) scores none.
- Count windows: predictions get their places in ingest order here, once; a block of N
  places is scored when it is full, and again when a late label lands in it.

The loop is a job of the background runner (:mod:`monitor.runner`): each run is one
pass within the runner's time budget. A pass checks the budget before each window; once
it is spent, the windows not yet scored go back to wait for the next pass (the runner
runs it again as soon as its other jobs have had their turn), and the pass reports
them as its backlog. A direct :meth:`ScoringLoop.run_once` has no budget.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence

from collectors.contract import ModelDescription
from monitor.core.windows import Split, SplitKind, Window, parse_split, window_start
from monitor.errors import NotFoundError
from monitor.runner import Budget, Progress
from monitor.score.results import SplitResults, WindowResult
from monitor.score.scorer import WindowScorer
from monitor.store import Store

__all__ = ["ScoringLoop"]

WindowKey = tuple[str, str, float]
"""(model, version, window start)."""
RollupKey = tuple[str, str, int, float]
"""(model, version, rollup length, window start)."""
BlockKey = tuple[str, str, int]
"""(model, version, block number)."""

MAX_BLOCKS_PER_PASS = 200
"""Most count blocks one pass scores; the rest wait for the next (a backlog, such as
turning count windows on over stored history, then cannot stall the other windows)."""


class ScoringLoop:
    """Scores marked windows, one pass per run of the background runner (a
    :class:`monitor.runner.Job`).

    Args:
        store: The monitor's store.
        scorer: Computes one window's result.
        window_seconds: Base window length (the windows whose profiles ingest keeps).
        rollup_seconds: Lengths of the longer time windows, each a multiple of
            ``window_seconds``.
        count_window: Predictions per count window; 0 turns count windows off.
        segment_keys: Segment keys whose values are scored as windows of their own.
        max_segment_values: Most values scored per split key and window (the most
            frequent): per segment key, of the variants, of the stages, per sensitive
            attribute.
        split_variants: Score each variant of a closed base window as a window.
        split_stages: Score each pipeline stage of a closed base window as a window.
        split_groups: Score each group of each categorical sensitive attribute of a
            closed base window as a window.
        clock: Returns the current epoch time (injected in tests).

    Raises:
        ValueError: A rollup length is not a multiple of ``window_seconds``.
    """

    def __init__(
        self,
        store: Store,
        scorer: WindowScorer,
        *,
        window_seconds: int,
        rollup_seconds: Sequence[int] = (),
        count_window: int = 0,
        segment_keys: Sequence[str] = (),
        max_segment_values: int = 20,
        split_variants: bool = False,
        split_stages: bool = False,
        split_groups: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        for seconds in rollup_seconds:
            if seconds <= window_seconds or seconds % window_seconds:
                raise ValueError(
                    f"a rollup of {seconds} s is not a multiple of the {window_seconds} s window"
                )
        self._store = store
        self._scorer = scorer
        self._window = window_seconds
        self._rollup_lengths = tuple(sorted(set(rollup_seconds)))
        self._count = count_window
        self._segment_keys = tuple(segment_keys)
        self._max_values = max_segment_values
        self._split_variants = split_variants
        self._split_stages = split_stages
        self._split_groups = split_groups
        self._clock = clock
        self._lock = threading.Lock()
        self._dirty: set[WindowKey] = set()
        self._open: set[WindowKey] = set()
        """Windows scored while still open: scored once more when they close."""
        self._rollups: dict[RollupKey, float] = {}
        """Rollups with new data, and when each is due: when it closes, or for a closed
        one the end of the current base window."""
        self._unplaced: dict[tuple[str, str], set[float] | None] = {}
        """Per version, base windows that hold predictions without a place in ingest
        order (None: search every row)."""
        self._relabelled: set[tuple[str, str, int]] = set()
        """Places of predictions that got a label."""
        self._blocks: set[BlockKey] = set()
        """Full count blocks waiting to be scored."""
        self._placed: dict[tuple[str, str], int] = {}
        self._splits_scored: dict[WindowKey, float] = {}
        """Closed windows whose splits were scored less than a base window ago, and when."""
        self._splits_due: dict[WindowKey, float] = {}
        """Closed windows whose splits wait for that base window to pass, and until when."""
        self._latest: dict[tuple[str, str], WindowResult] = {}
        self._latest_splits: dict[tuple[str, str], SplitResults] = {}
        self.last_success: float | None = None
        """When a pass last ended without an error (the loop's clock), or None."""
        self.passes = 0

    # -- marks -------------------------------------------------------------------------

    def mark(
        self,
        model: str,
        version: str,
        timestamps: Iterable[float],
        positions: Iterable[int] = (),
    ) -> None:
        """Note new data in the windows holding these event times.

        Args:
            positions: Places in ingest order of predictions that got a label (their
                count blocks are scored again); without them, the marked windows are
                searched for predictions to place.
        """
        starts = {window_start(ts, self._window) for ts in timestamps}
        places = set(positions)
        later = window_start(self._clock(), self._window) + self._window if starts else 0.0
        with self._lock:
            self._dirty.update((model, version, s) for s in starts)
            for seconds in self._rollup_lengths:
                for start in {window_start(s, seconds) for s in starts}:
                    key = (model, version, seconds, start)
                    if key not in self._rollups:
                        self._rollups[key] = max(start + seconds, later)
            if self._count:
                if places:
                    self._relabelled.update((model, version, p) for p in places)
                elif starts:
                    found = self._unplaced.setdefault((model, version), set())
                    if found is not None:
                        found.update(starts)

    def latest(self) -> dict[tuple[str, str], WindowResult]:
        """Per (model, version): the result of the newest closed base window scored."""
        with self._lock:
            return dict(self._latest)

    def latest_splits(self) -> dict[tuple[str, str], SplitResults]:
        """Per (model, version): the split results of the newest closed base window."""
        with self._lock:
            return dict(self._latest_splits)

    # -- running -----------------------------------------------------------------------

    def recover(self) -> None:
        """Publish the stored results and mark the recent windows (they may have changed
        while down); the runner then runs the passes."""
        self.restore()
        recent = self._store.windows_with_predictions(self._clock() - 2 * self._window)
        for model, version, newest in recent:
            self.mark(model, version, [newest, newest - self._window])
        if self._count:
            # Predictions stored while down may have no place yet: search every row once.
            with self._lock:
                for model, version in self._store.list_versions():
                    self._unplaced[(model, version)] = None

    def restore(self) -> None:
        """Publish, per version, the stored results of its newest closed base window
        (the whole version's and its splits'), as the exporter showed them before a
        restart: a version without new traffic would otherwise have no series."""
        now = self._clock()
        models = _Models(self._store)
        for model, version in self._store.list_versions():
            found = self._store.window_results(
                model, version, until=now - self._window, limit=1, window_seconds=self._window
            )
            if not found:
                continue
            self._publish(WindowResult.from_record(found[0]))
            description = models.get(model)
            if description is not None and self._split_keys(description):
                window = Window.of_time(model, version, found[0].window_start, self._window)
                self._publish_splits(model, version, self._stored_splits(description, window))

    def _split_keys(self, model: ModelDescription) -> list[tuple[SplitKind, str]]:
        """The splits scored for ``model``, in the order results list them."""
        keys: list[tuple[SplitKind, str]] = [("segment", key) for key in self._segment_keys]
        if self._split_variants:
            keys.append(("variant", ""))
        if self._split_stages:
            keys.append(("stage", ""))
        if self._split_groups:
            categorical = {f.name for f in model.features if f.type == "categorical"}
            keys += [("group", a) for a in model.sensitive_attributes if a in categorical]
        return keys

    def _stored_splits(self, model: ModelDescription, window: Window) -> SplitResults:
        """A closed window's stored split results, in the order scoring gives them."""
        order = {key: i for i, key in enumerate(self._split_keys(model))}
        results = []
        for record in self._store.split_results(window):
            result = WindowResult.from_record(record)
            split = parse_split(result.segment)
            if split is not None and (split.kind, split.key) in order:
                at = order[(split.kind, split.key)]
                results.append((at, -result.predictions, split.value, result, split))
        results.sort(key=lambda r: r[:3])
        cut: dict[SplitKind, int] = {}
        for kind, key in order:
            counts = self._store.split_counts(window, kind, key)
            if kind == "segment" or counts:
                cut[kind] = cut.get(kind, 0) + max(0, len(counts) - self._max_values)
        splits = [r[4] for r in results]
        return SplitResults(
            window.start, tuple(r[3] for r in results), cut, self._group_labels(model, splits)
        )

    def _group_labels(self, model: ModelDescription, splits: Iterable[Split]) -> dict[str, str]:
        """Per group split's label: the ``group`` label it is exported with (its value
        where the model allows it, else its number, given once and kept)."""
        values: dict[str, list[str]] = {}
        for split in splits:
            if split.kind == "group":
                values.setdefault(split.key, []).append(split.value)
        labels: dict[str, str] = {}
        for attribute, found in values.items():
            if model.group_labels_allowed:
                numbered = {v: v for v in found}
            else:
                numbers = self._store.group_numbers(model.name, attribute, sorted(found))
                numbered = {v: f"g{n}" for v, n in numbers.items()}
            for value, label in numbered.items():
                labels[Split("group", attribute, value).label] = label
        return labels

    def run_once(self, budget: Budget | None = None) -> list[WindowResult]:
        """Score every marked window now (without a budget: all of them); returns the
        results."""
        return self._pass(budget or Budget.unlimited())[0]

    def run(self, budget: Budget) -> Progress:
        """One pass within ``budget`` (the runner's call); the windows it left wait for
        the next.

        Raises:
            SidewatchError: Or any error of the store or the scorer; the windows of the
                failed pass are scored again only when new data marks them.
        """
        yielded = self._pass(budget)[1]
        return Progress(self.backlog(), yielded)

    def backlog(self) -> int:
        """Windows (and count blocks) waiting to be scored now."""
        now = self._clock()
        with self._lock:
            bases = self._dirty | {k for k in self._open if k[2] + self._window <= now}
            bases |= {k for k, due in self._splits_due.items() if due <= now}
            rollups = sum(1 for due in self._rollups.values() if due <= now)
            # A version with predictions to place counts once: its blocks are not known
            # until they are placed.
            return len(bases) + rollups + len(self._blocks) + len(self._unplaced)

    def _pass(self, budget: Budget) -> tuple[list[WindowResult], bool]:
        """One pass: its results, and whether it stopped at its budget with work left."""
        now = self._clock()
        with self._lock:
            closed = {k for k in self._open if k[2] + self._window <= now}
            self._open -= closed
            dirty, self._dirty = self._dirty | closed, set()
            rollups = {k for k, due in self._rollups.items() if due <= now}
            for key in rollups:
                del self._rollups[key]
            unplaced, self._unplaced = self._unplaced, {}
            relabelled, self._relabelled = self._relabelled, set()
            splits_due = {k for k, due in self._splits_due.items() if due <= now}
            for due_key in splits_due:
                del self._splits_due[due_key]
        self._splits_scored = {
            k: t for k, t in self._splits_scored.items() if t + self._window > now
        }
        models = _Models(self._store)
        results: list[WindowResult] = []
        bases = sorted(dirty | splits_due, key=lambda k: k[2])
        for i, base in enumerate(bases):
            if budget.spent():
                self._requeue(now, bases[i:], dirty, splits_due, rollups)
                self._requeue_blocks(unplaced, relabelled)
                return self._passed(results, yielded=True)
            model_name, version, start = base
            model = models.get(model_name)
            if model is None:
                continue
            window = Window.of_time(model_name, version, start, self._window)
            if base in dirty:
                result = self._save(model, window)
                results.append(result)
                if result.window_end > now:
                    with self._lock:
                        self._open.add(base)
                    continue
                self._publish(result)
            splits = self._splits_of(model, window, now)
            if splits is not None:
                results.extend(splits.results)
                self._publish_splits(model_name, version, splits)
        ordered = sorted(rollups, key=lambda k: (k[2], k[3]))
        for i, (model_name, version, seconds, start) in enumerate(ordered):
            if budget.spent():
                self._requeue(now, [], set(), set(), ordered[i:])
                self._requeue_blocks(unplaced, relabelled)
                return self._passed(results, yielded=True)
            model = models.get(model_name)
            if model is not None:
                window = Window.of_time(model_name, version, start, seconds)
                results.append(self._save(model, window))
        blocks, yielded = self._score_blocks(models, unplaced, relabelled, budget)
        results.extend(blocks)
        return self._passed(results, yielded)

    def _passed(
        self, results: list[WindowResult], yielded: bool
    ) -> tuple[list[WindowResult], bool]:
        self.passes += 1
        self.last_success = self._clock()
        return results, yielded

    def _requeue(
        self,
        now: float,
        bases: Iterable[WindowKey],
        dirty: set[WindowKey],
        splits_due: set[WindowKey],
        rollups: Iterable[RollupKey],
    ) -> None:
        """Put back what a pass took but did not score (its budget was spent), as it
        was: marked windows stay marked, due splits and rollups stay due."""
        with self._lock:
            for base in bases:
                if base in dirty:
                    self._dirty.add(base)
                if base in splits_due:
                    self._splits_due[base] = min(self._splits_due.get(base, now), now)
            for key in rollups:
                self._rollups[key] = min(self._rollups.get(key, now), now)

    def _requeue_blocks(
        self,
        unplaced: dict[tuple[str, str], set[float] | None],
        relabelled: set[tuple[str, str, int]],
    ) -> None:
        """Put back the count-window work a pass took but did not do."""
        if not self._count:
            return
        with self._lock:
            for key, starts in unplaced.items():
                if key in self._unplaced:
                    found = self._unplaced[key]
                    self._unplaced[key] = (
                        None if starts is None or found is None else found | starts
                    )
                else:
                    self._unplaced[key] = starts
            self._relabelled.update(relabelled)

    def _save(self, model: ModelDescription, window: Window) -> WindowResult:
        result = self._scorer.score(model, window)
        self._store.save_window_result(result.as_record())
        return result

    def _splits_of(
        self, model: ModelDescription, window: Window, now: float
    ) -> SplitResults | None:
        """The window's split results, or None while they wait (scored too recently) or
        where no split is scored for the model."""
        keys = self._split_keys(model)
        if not keys:
            return None
        key = (window.model, window.version, window.start)
        last = self._splits_scored.get(key)
        if last is not None and now < last + self._window:
            # Late labels trickling into a closed window would otherwise rescore every
            # split value of it on every pass.
            with self._lock:
                self._splits_due[key] = last + self._window
            return None
        self._splits_scored[key] = now
        return self._score_splits(model, window, keys)

    def _score_splits(
        self, model: ModelDescription, window: Window, keys: list[tuple[SplitKind, str]]
    ) -> SplitResults:
        results = []
        splits = []
        cut: dict[SplitKind, int] = {}
        for kind, key in keys:
            counts = self._store.split_counts(window, kind, key)
            if kind != "segment" and not counts:
                continue
            ranked = sorted(counts, key=lambda value: (-counts[value], value))
            cut[kind] = cut.get(kind, 0) + max(0, len(ranked) - self._max_values)
            for value in ranked[: self._max_values]:
                split = Split(kind, key, value)
                of_split = Window.of_time(
                    window.model, window.version, window.start, self._window, split
                )
                results.append(self._save(model, of_split))
                splits.append(split)
        self._store.drop_split_results(window, [r.segment for r in results])
        groups = self._group_labels(model, splits)
        return SplitResults(window.start, tuple(results), cut, groups)

    def _score_blocks(
        self,
        models: _Models,
        unplaced: dict[tuple[str, str], set[float] | None],
        relabelled: set[tuple[str, str, int]],
        budget: Budget,
    ) -> tuple[list[WindowResult], bool]:
        """The count blocks scored, and whether blocks were left for the next pass."""
        if not self._count:
            return [], False
        size = self._count
        versions = sorted(unplaced.items())
        for i, ((model_name, version), starts) in enumerate(versions):
            if budget.spent():
                self._requeue_blocks(dict(versions[i:]), relabelled)
                return [], True
            spans = None if starts is None else [(s, s + self._window) for s in sorted(starts)]
            before, after = self._store.place_predictions(model_name, version, spans)
            self._placed[(model_name, version)] = after
            with self._lock:
                self._blocks.update(
                    (model_name, version, b) for b in range(before // size, after // size)
                )
        for model_name, version, position in relabelled:
            placed = self._placed.get((model_name, version))
            if placed is None:
                placed = self._store.placed_count(model_name, version)
                self._placed[(model_name, version)] = placed
            if position < placed // size * size:  # a full block; else scored once full
                with self._lock:
                    self._blocks.add((model_name, version, position // size))
        with self._lock:
            batch = sorted(self._blocks, key=lambda k: (k[2], k[0], k[1]))[:MAX_BLOCKS_PER_PASS]
            self._blocks.difference_update(batch)
        results: list[WindowResult] = []
        for i, (model_name, version, block) in enumerate(batch):
            if budget.spent():
                with self._lock:
                    self._blocks.update(batch[i:])
                return results, True
            model = models.get(model_name)
            if model is None:
                continue
            rows, first_ts, last_ts = self._store.block_span(
                model_name, version, block * size, (block + 1) * size
            )
            if rows < size:
                continue
            window = Window.of_count(model_name, version, block, size, first_ts, last_ts)
            results.append(self._save(model, window))
        with self._lock:
            left = bool(self._blocks)  # beyond MAX_BLOCKS_PER_PASS: the next pass's
        return results, left

    def _publish(self, result: WindowResult) -> None:
        key = (result.model, result.model_version)
        with self._lock:
            current = self._latest.get(key)
            if current is None or current.window_start <= result.window_start:
                self._latest[key] = result

    def _publish_splits(self, model: str, version: str, splits: SplitResults) -> None:
        key = (model, version)
        with self._lock:
            current = self._latest_splits.get(key)
            if current is None or current.window_start <= splits.window_start:
                self._latest_splits[key] = splits


class _Models:
    """Model descriptions looked up once per pass (None: no longer registered)."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._found: dict[str, ModelDescription | None] = {}

    def get(self, name: str) -> ModelDescription | None:
        if name not in self._found:
            try:
                self._found[name] = self._store.get_model(name)
            except NotFoundError:
                self._found[name] = None
        return self._found[name]
