"""Window results: each scored window's record, replaced when the window is scored again.

Stage: store (private). In: :class:`~monitor.core.records.WindowRecord` from the
scoring loop. Out: the same records, by window, split and kind, newest first; the
numbers of sensitive groups (given once per model, attribute and value).

A result's ``segment`` column holds its split's label (:attr:`monitor.core.windows.Split.label`:
``key=value`` for a segment, ``@variant=...``, ``@stage=...``, ``@group:attribute=...``),
empty for every event.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, insert, select

from monitor.core.records import WindowRecord
from monitor.core.windows import Window, WindowKind
from monitor.store._common import SPLIT_GROUPS, WINDOWS
from monitor.store._engine import StoreBase


class WindowTables(StoreBase):
    """Window results: one row per scored window (and split value)."""

    # -- window results ----------------------------------------------------------------

    def save_window_result(self, result: WindowRecord) -> None:
        """Store a window's scores, replacing an earlier scoring of the same window."""
        w = WINDOWS
        row = {
            "model": result.model,
            "model_version": result.model_version,
            "segment": result.segment,
            "window_kind": result.window_kind,
            "window_start": result.window_start,
            "window_end": result.window_end,
            "block": -1 if result.block is None else result.block,
            "definition": result.definition,
            "predictions": result.predictions,
            "labelled": result.labelled,
            "accuracy": result.accuracy,
            "latency_p50_seconds": result.latency_p50_seconds,
            "latency_p95_seconds": result.latency_p95_seconds,
            "latency_p99_seconds": result.latency_p99_seconds,
            "reference_revision": result.reference_revision,
            "drift": result.drift,
            "drift_share": result.drift_share,
            "dataset_drifted": result.dataset_drifted,
            "scored_at": result.scored_at,
            "scores": result.scores,
        }
        keys = [
            "model",
            "model_version",
            "segment",
            "window_kind",
            "window_start",
            "window_end",
            "block",
        ]
        stmt = self._insert(w)
        stmt = stmt.on_conflict_do_update(
            index_elements=keys, set_={k: stmt.excluded[k] for k in row if k not in keys}
        )
        with self._write() as conn:
            conn.execute(stmt, [row])

    def split_results(self, window: Window) -> list[WindowRecord]:
        """The stored split results of a (whole-version) time window, of any split."""
        w = WINDOWS.c
        stmt = select(WINDOWS).where(
            w.model == window.model,
            w.model_version == window.version,
            w.window_kind == "time",
            w.window_start == window.start,
            w.window_end == window.end,
            w.segment != "",
        )
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_window_result(r) for r in rows]

    def drop_split_results(self, window: Window, keep: Iterable[str]) -> int:
        """Delete a time window's split results but those of ``keep`` (their labels).

        A value that falls out of the per-key cap when its window is scored again would
        otherwise keep its older result.

        Returns:
            How many results were deleted.
        """
        w = WINDOWS.c
        stmt = delete(WINDOWS).where(
            w.model == window.model,
            w.model_version == window.version,
            w.window_kind == "time",
            w.window_start == window.start,
            w.window_end == window.end,
            w.segment != "",
            w.segment.not_in(list(keep)),
        )
        with self._write() as conn:
            return int(conn.execute(stmt).rowcount)

    def window_results(
        self,
        model: str,
        version: str,
        *,
        since: float | None = None,
        until: float | None = None,
        limit: int = 100,
        segment: str = "",
        window_kind: WindowKind = "time",
        window_seconds: float | None = None,
        block_size: int | None = None,
        before: float | None = None,
    ) -> list[WindowRecord]:
        """A version's window results of one split value and kind, newest first; window
        starts in ``[since, until]``.

        Args:
            segment: The split's label (empty: every event).
            window_seconds: Time windows of this length only (None: every length).
            block_size: Count windows of this many predictions only (None: all).
            before: Window starts strictly before this only (the next page after a
                page whose oldest window started there).
        """
        w = WINDOWS
        stmt = select(w).where(
            w.c.model == model,
            w.c.model_version == version,
            w.c.segment == segment,
            w.c.window_kind == window_kind,
        )
        if window_seconds is not None:
            # Window bounds are whole seconds well inside a float's exact integers.
            stmt = stmt.where(w.c.window_end - w.c.window_start == float(window_seconds))
        if block_size is not None:
            stmt = stmt.where(w.c.predictions == block_size)
        if since is not None:
            stmt = stmt.where(w.c.window_start >= since)
        if until is not None:
            stmt = stmt.where(w.c.window_start <= until)
        if before is not None:
            stmt = stmt.where(w.c.window_start < before)
        stmt = stmt.order_by(w.c.window_start.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_window_result(r) for r in rows]

    # -- sensitive groups' numbers ------------------------------------------------------

    def group_numbers(self, model: str, attribute: str, values: Iterable[str]) -> dict[str, int]:
        """The numbers of these values of a model's sensitive attribute (1 first), each
        given once: a value seen for the first time gets the next number, in the order
        given."""
        g = SPLIT_GROUPS.c
        wanted = list(dict.fromkeys(values))
        with self._write() as conn:
            found = {
                value: int(number)
                for value, number in conn.execute(
                    select(g.value, g.number).where(g.model == model, g.attribute == attribute)
                )
            }
            new = [v for v in wanted if v not in found]
            if new:
                after = max(found.values(), default=0)
                numbers = {value: after + i for i, value in enumerate(new, start=1)}
                now = time.time()
                rows = [
                    {"model": model, "attribute": attribute, "value": v, "number": n}
                    | {"created_at": now}
                    for v, n in numbers.items()
                ]
                conn.execute(insert(SPLIT_GROUPS), rows)
                found.update(numbers)
        return {v: found[v] for v in wanted}

    def split_groups(self, model: str) -> list[tuple[str, str, int]]:
        """Every numbered group of a model: ``(attribute, value, number)``, by attribute
        and number."""
        g = SPLIT_GROUPS.c
        stmt = (
            select(g.attribute, g.value, g.number)
            .where(g.model == model)
            .order_by(g.attribute, g.number)
        )
        with self.engine.connect() as conn:
            return [(str(a), str(v), int(n)) for a, v, n in conn.execute(stmt)]


def _window_result(row: Any) -> WindowRecord:
    return WindowRecord(
        model=row["model"],
        model_version=row["model_version"],
        window_start=row["window_start"],
        window_end=row["window_end"],
        definition=row["definition"],
        predictions=row["predictions"],
        labelled=row["labelled"],
        accuracy=row["accuracy"],
        latency_p50_seconds=row["latency_p50_seconds"],
        latency_p95_seconds=row["latency_p95_seconds"],
        latency_p99_seconds=row["latency_p99_seconds"],
        reference_revision=row["reference_revision"],
        drift=row["drift"],
        drift_share=row["drift_share"],
        dataset_drifted=row["dataset_drifted"],
        scored_at=row["scored_at"],
        segment=row["segment"],
        window_kind=row["window_kind"],
        scores=row["scores"],
        block=None if row["block"] < 0 else row["block"],
    )
