"""Prediction results: what window parts keep about single predictions, in one table.

Stage: store (private). In: :class:`~monitor.core.prediction_results.PredictionResultRecord`
batches from the parts that keep per-prediction results (anomaly flags, explanations).
Out: an event's results (every part), one part's results over a window (paged), and
the count that retention deleted. The payload is a JSON document the store never reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import delete, func, select, tuple_

from monitor.core.prediction_results import PredictionResultRecord
from monitor.core.windows import Window
from monitor.store._common import PREDICTION_RESULTS, PREDICTIONS, dumps, in_window
from monitor.store._engine import StoreBase

_KEY = ["event_id", "model", "part"]
_COLUMNS = [*_KEY, "model_version", "ts", "payload", "created_at"]
DELETE_CHUNK = 10_000
"""Most results deleted per write transaction, so that ingest is not held up long."""

ResultCursor = tuple[float, str]
"""``(ts, event_id)`` of the last result of a page: the next page starts after it."""


class PredictionResultTables(StoreBase):
    """Prediction results: one row per prediction and part."""

    def save_prediction_results(self, records: Iterable[PredictionResultRecord]) -> int:
        """Store parts' results about predictions; a result of a stored
        ``(model, event_id, part)`` replaces it (the newest scoring wins, as a window
        scored again replaces its result), so writing a batch twice is harmless.

        Within one batch, the last record of a key wins.

        Returns:
            How many results were written (new or replacing).
        """
        # Plain DB-API executemany with the JSON encoded here, as ingest writes: through
        # SQLAlchemy's parameter processing PostgreSQL stored 16,700 rows/s.
        now = time.time()
        rows: dict[tuple[str, str, str], tuple[Any, ...]] = {}
        for r in records:
            rows[(r.event_id, r.model, r.part)] = (
                r.event_id,
                r.model,
                r.part,
                r.model_version,
                r.ts,
                dumps(r.payload),
                now,
            )
        if not rows:
            return 0
        mark = "?" if self.dialect == "sqlite" else "%s"
        sql = (
            f"INSERT INTO prediction_results ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join([mark] * len(_COLUMNS))}) "
            f"ON CONFLICT ({', '.join(_KEY)}) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in _COLUMNS if c not in _KEY)
        )
        with self._write() as conn:
            conn.exec_driver_sql(sql, list(rows.values()))
        return len(rows)

    def prediction_results(
        self, model: str, event_id: str, version: str | None = None
    ) -> list[PredictionResultRecord]:
        """Every part's result about one prediction, by part name.

        Args:
            version: Only if the prediction is of this version (None: any).
        """
        r = PREDICTION_RESULTS.c
        stmt = select(PREDICTION_RESULTS).where(r.event_id == event_id, r.model == model)
        if version is not None:
            stmt = stmt.where(r.model_version == version)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt.order_by(r.part)).mappings().all()
        return [_record(row) for row in rows]

    def prediction_results_in_window(
        self,
        window: Window,
        part: str,
        *,
        limit: int = 1000,
        after: ResultCursor | None = None,
    ) -> list[PredictionResultRecord]:
        """One part's results about a window's predictions, oldest first (by event
        time, then event id).

        A whole-version time window is read from the results alone (its index); a
        split or count window selects its predictions as scoring does (a join with
        ``predictions``, and with ``ingest_order`` for a count window).

        Args:
            limit: Most results returned.
            after: The cursor of the previous page's last result: this page starts
                after it.
        """
        r = PREDICTION_RESULTS.c
        stmt = select(PREDICTION_RESULTS).where(r.part == part)
        if window.kind == "time" and window.split is None:
            stmt = stmt.where(
                r.model == window.model,
                r.model_version == window.version,
                r.ts >= window.start,
                r.ts < window.end,
            )
        else:
            p = PREDICTIONS.c
            joined = stmt.join(PREDICTIONS, (p.model == r.model) & (p.event_id == r.event_id))
            stmt = in_window(joined, window).where(r.model == window.model)
        if after is not None:
            stmt = stmt.where(tuple_(r.ts, r.event_id) > tuple_(*after))
        stmt = stmt.order_by(r.ts, r.event_id).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).mappings().all()
        return [_record(row) for row in rows]

    def delete_prediction_results_before(
        self, cutoff: float, *, max_chunks: int | None = None
    ) -> int:
        """Retention: delete the results about predictions of event time before
        ``cutoff``, a chunk (:data:`DELETE_CHUNK` rows) per write transaction, at most
        ``max_chunks`` chunks (a budgeted caller comes back for the rest).

        Returns:
            How many results were deleted.
        """
        r = PREDICTION_RESULTS.c
        deleted = 0
        chunks = 0
        while max_chunks is None or chunks < max_chunks:
            chunks += 1
            chunk = select(r.event_id, r.model, r.part).where(r.ts < cutoff).limit(DELETE_CHUNK)
            stmt = delete(PREDICTION_RESULTS).where(tuple_(r.event_id, r.model, r.part).in_(chunk))
            with self._write() as conn:
                count = int(conn.execute(stmt).rowcount)
            deleted += count
            if count < DELETE_CHUNK:
                return deleted
        return deleted

    def count_prediction_results_before(self, cutoff: float) -> int:
        """How many results are about predictions of event time before ``cutoff``."""
        r = PREDICTION_RESULTS.c
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).where(r.ts < cutoff)).scalar() or 0)

    def expire_prediction_results(self, retention_seconds: float, now: float | None = None) -> int:
        """Retention: delete the results about predictions older than
        ``retention_seconds`` (by event time) at ``now`` (default: the clock's now).

        Returns:
            How many results were deleted.
        """
        now = time.time() if now is None else now
        return self.delete_prediction_results_before(now - retention_seconds)


def _record(row: Any) -> PredictionResultRecord:
    return PredictionResultRecord(
        model=row["model"],
        model_version=row["model_version"],
        event_id=row["event_id"],
        part=row["part"],
        ts=row["ts"],
        payload=row["payload"],
        created_at=row["created_at"],
    )
