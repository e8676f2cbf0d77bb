"""Fixed data sets that exercise every branch of the drift tests."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd


def clean(values: Any) -> pd.Series:
    """Values as Evidently's ``get_one_column_drift`` hands them to a test: missing and
    infinite values dropped."""
    series = pd.Series(values)
    if series.dtype.kind == "f":
        series = series.replace([-np.inf, np.inf], np.nan)
    return series.dropna().reset_index(drop=True)


@dataclass(frozen=True)
class Case:
    """One feature's reference and window."""

    id: str
    kind: str
    reference: Any
    current: Any


def _cases() -> list[Case]:
    rng = np.random.default_rng(20240604)
    with_gaps = rng.normal(size=700)
    with_gaps[::50] = np.nan
    with_gaps[::97] = np.inf
    strings = rng.choice(["red", "green", "blue"], 400).astype(object)
    strings[::17] = None
    return [
        Case("normal-small", "numeric", rng.normal(size=300), rng.normal(0.3, 1, 200)),
        Case("normal-same", "numeric", rng.normal(size=500), rng.normal(size=400)),
        Case("normal-large", "numeric", rng.normal(size=15_000), rng.normal(0.02, 1, 12_000)),
        Case("skewed", "numeric", rng.lognormal(size=2_000), rng.lognormal(0.1, 1.1, 1_500)),
        Case("with-missing", "numeric", with_gaps, rng.normal(0.1, 1, 500)),
        Case("integers", "numeric", rng.integers(0, 60, 900), rng.integers(5, 70, 800)),
        Case(
            "few-values", "numeric", rng.integers(0, 12, 800) * 0.5, rng.integers(0, 14, 600) * 0.5
        ),
        Case(
            "categorical",
            "categorical",
            rng.choice(list("abcd"), 600, p=[0.4, 0.3, 0.2, 0.1]),
            rng.choice(list("abcd"), 500, p=[0.35, 0.3, 0.2, 0.15]),
        ),
        Case(
            "new-category",
            "categorical",
            rng.choice(list("abc"), 600),
            rng.choice(list("abcd"), 500),
        ),
        Case(
            "lost-category",
            "categorical",
            rng.choice(list("abcd"), 600),
            rng.choice(list("abc"), 500),
        ),
        Case("strings-missing", "categorical", strings, rng.choice(["red", "green", "blue"], 300)),
        Case("boolean", "boolean", rng.random(1_000) < 0.3, rng.random(800) < 0.34),
        Case("boolean-large", "boolean", rng.random(5_000) < 0.5, rng.random(5_000) < 0.51),
    ]


CASES = _cases()
