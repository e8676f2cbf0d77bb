"""Windows: which stored predictions one result covers.

Stage: core. A :class:`Window` goes in to the store (which turns it into a row
selection) and to the scorer (which scores what the store selects); the loop decides
which windows to score. Three shapes, all per model version:

- a tumbling time window ``[start, start + seconds)`` of event time, aligned to the
  epoch (:func:`window_start`). The base length is ``window_seconds``, whose feature
  profiles ingest keeps; longer ones (rollups, multiples of it) take their drift from
  the merge of their base windows' profiles.
- a time window of one split value (a :class:`Split`): the window's predictions of one
  segment value, variant, pipeline stage or sensitive group, profiled from those rows
  when scored.
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

__all__ = [
    "Marker",
    "Split",
    "SplitKind",
    "Window",
    "WindowKind",
    "parse_split",
    "window_start",
]

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


SplitKind = Literal["segment", "variant", "stage", "group"]
"""What a split selects a window's predictions by:

- ``segment``: the value of one key of the event's ``segment`` (``region=eu``);
- ``variant``: the event's ``variant`` (``shadow``, or an A/B arm);
- ``stage``: the event's pipeline ``stage``;
- ``group``: the value of a sensitive attribute (one of the model's
  ``sensitive_attributes``, a feature) in the event's features.
"""

_PREFIX = "@"
"""Starts the label of every split but a segment's. A segment key matches the contract's
``NAME_PATTERN`` (a letter or ``_`` first), so no segment label starts with it: the
labels of the kinds cannot collide."""


def window_start(ts: float, seconds: int) -> float:
    """Start of the tumbling window of length ``seconds`` that holds ``ts``."""
    return math.floor(ts / seconds) * seconds


@dataclass(frozen=True, slots=True)
class Split:
    """One value of one split of a window's predictions (see :data:`SplitKind`)."""

    kind: SplitKind
    key: str
    """The segment key or the sensitive attribute; empty for a variant or a stage."""
    value: str

    @property
    def label(self) -> str:
        """How results store it: ``key=value`` (segment, as before splits had kinds),
        ``@variant=value``, ``@stage=value``, ``@group:attribute=value``."""
        if self.kind == "segment":
            return f"{self.key}={self.value}"
        if self.kind == "group":
            return f"{_PREFIX}group:{self.key}={self.value}"
        return f"{_PREFIX}{self.kind}={self.value}"


def parse_split(label: str) -> Split | None:
    """A stored label (:attr:`Split.label`) to its split; the empty label (every event)
    to None.

    Raises:
        ValueError: The label is none of the forms of :attr:`Split.label`.
    """
    if label == "":
        return None
    head, sep, value = label.partition("=")
    if not sep or not head:
        raise ValueError(
            f"a split is written key=value for a segment (e.g. region=eu), @variant=value, "
            f"@stage=value or @group:attribute=value; got {label!r}"
        )
    if not head.startswith(_PREFIX):
        return Split("segment", head, value)
    kind, _, key = head[len(_PREFIX) :].partition(":")
    if kind == "variant" and not key:
        return Split("variant", "", value)
    if kind == "stage" and not key:
        return Split("stage", "", value)
    if kind == "group" and key:
        return Split("group", key, value)
    raise ValueError(
        f"unknown split {head!r} in {label!r}: @variant=value, @stage=value or "
        "@group:attribute=value"
    )


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
    split: Split | None = None
    """Time windows only: the split value whose predictions the window holds."""
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
        split: Split | None = None,
    ) -> Window:
        """The time window ``[start, start + seconds)``, of one split value or all."""
        return cls(model, version, start, start + seconds, "time", split)

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
    def split_label(self) -> str:
        """The split's :attr:`Split.label`, or empty for every event (as results store
        it)."""
        return "" if self.split is None else self.split.label

    @property
    def positions(self) -> tuple[int, int]:
        """Count windows: the block's places in ingest order, ``[first, last + 1)``.

        Raises:
            ValueError: Not a count window.
        """
        if self.block is None or self.size is None:
            raise ValueError("only a count window has places in ingest order")
        return self.block * self.size, (self.block + 1) * self.size
