"""Windows: which stored predictions one result covers.

Stage: core. A :class:`Window` goes in to the store (which turns it into a row
selection) and to the scorer (which scores what the store selects); the loop decides
which windows to score. Three shapes, all per model version:

- a tumbling time window ``[start, start + seconds)`` of event time, aligned to the
  epoch (:func:`window_start`). The base length is ``window_seconds``, whose feature
  profiles ingest keeps; longer ones (rollups, multiples of it) take their drift from
  the merge of their base windows' profiles.
- a time window of one segment value (``key=value``): the window's predictions whose
  ``segment[key]`` is ``value``, profiled from those rows when scored.
- a count window: ``block`` of ``size`` predictions, the predictions whose place in the
  version's ingest order is in ``[block * size, (block + 1) * size)``. A place is
  written once (by the scoring loop, in ``(received_at, event_id)`` order of the rows
  not yet placed), so a late event never reshuffles a block already scored: it joins
  the block being filled. ``start`` and ``end`` are the event times of the block's
  first and last predictions (``end`` included).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["Marker", "Segment", "Window", "WindowKind", "parse_segment", "window_start"]

WindowKind = Literal["time", "count"]
"""``time``: a tumbling time window; ``count``: a block of N predictions."""


class Marker(Protocol):
    """What ingest calls with what it stored (the scoring loop's ``ScoringLoop.mark``).

    Defined here, below both, so that ingest needs nothing from the loop's module.
    """

    def __call__(
        self,
        model: str,
        version: str,
        timestamps: Iterable[float],
        positions: Iterable[int] = (),
    ) -> None:
        """Note new data at these event times (and, for labels, these ingest places)."""


Segment = tuple[str, str]
"""``(key, value)`` of a segment."""


def window_start(ts: float, seconds: int) -> float:
    """Start of the tumbling window of length ``seconds`` that holds ``ts``."""
    return math.floor(ts / seconds) * seconds


def parse_segment(label: str) -> Segment | None:
    """``key=value`` to ``(key, value)``; the empty label (every event) to None.

    Raises:
        ValueError: The label is neither empty nor ``key=value`` with a non-empty key.
    """
    if label == "":
        return None
    key, sep, value = label.partition("=")
    if not sep or not key:
        raise ValueError(f"a segment is written key=value (e.g. region=eu), got {label!r}")
    return key, value


@dataclass(frozen=True, slots=True)
class Window:
    """One window of one model version to score (see the module docstring).

    Build one with :meth:`of_time` or :meth:`of_count`.
    """

    model: str
    version: str
    start: float
    end: float
    """Time windows: the end, excluded; count windows: the last event's time."""
    kind: WindowKind = "time"
    segment: Segment | None = None
    """Time windows only: the segment value whose predictions the window holds."""
    block: int | None = None
    """Count windows: the block's number in ingest order (0 first)."""
    size: int | None = None
    """Count windows: predictions per block."""

    @classmethod
    def of_time(
        cls,
        model: str,
        version: str,
        start: float,
        seconds: int,
        segment: Segment | None = None,
    ) -> Window:
        """The time window ``[start, start + seconds)``, of one segment value or all."""
        return cls(model, version, start, start + seconds, "time", segment)

    @classmethod
    def of_count(
        cls, model: str, version: str, block: int, size: int, start: float, end: float
    ) -> Window:
        """Block ``block`` of ``size`` predictions, spanning event times ``start..end``."""
        return cls(model, version, start, end, "count", None, block, size)

    @property
    def seconds(self) -> float:
        """Length of a time window."""
        return self.end - self.start

    @property
    def segment_label(self) -> str:
        """``key=value``, or empty for every event (as results store it)."""
        return "" if self.segment is None else f"{self.segment[0]}={self.segment[1]}"

    @property
    def positions(self) -> tuple[int, int]:
        """Count windows: the block's places in ingest order, ``[first, last + 1)``.

        Raises:
            ValueError: Not a count window.
        """
        if self.block is None or self.size is None:
            raise ValueError("only a count window has places in ingest order")
        return self.block * self.size, (self.block + 1) * self.size
