"""The shape of a metric definition, shared by every module that defines metric names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class MetricName:
    """One exported metric family: its name, type, help text and label names."""

    name: str
    type: Literal["counter", "gauge", "histogram", "info"]
    help: str
    labels: tuple[str, ...]
