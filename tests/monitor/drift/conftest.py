"""Evidently 0.7 as an oracle: imported once per session, lazily, with telemetry off."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.monitor.drift.cases import clean

EVIDENTLY_NAMES = {
    "ks": "ks_stat_test",
    "chisquare": "chi_stat_test",
    "z": "z_stat_test",
    "psi": "psi_stat_test",
    "jensenshannon": "jensenshannon_stat_test",
    "wasserstein": "wasserstein_stat_test",
    "hellinger": "hellinger_stat_test",
}


@dataclass(frozen=True)
class Evidently:
    """The parts of Evidently the drift tests are compared with."""

    stattests: dict[str, Any]
    column_type: Any
    default_stattest: Callable[..., Any]

    def run(self, test: str, reference: Any, current: Any, kind: str, threshold: float) -> Any:
        """Evidently's ``(score, drifted)`` for one test, on values cleaned as Evidently's
        ``get_one_column_drift`` cleans them (missing and infinite values dropped)."""
        ref, cur = clean(reference), clean(current)
        column_type = (
            self.column_type.Numerical if kind == "numeric" else self.column_type.Categorical
        )
        with warnings.catch_warnings():  # Evidently's own division by zero and the like
            warnings.simplefilter("ignore")
            return self.stattests[test].func(ref, cur, column_type, threshold)

    def default(self, reference: Any, current: Any, kind: str) -> str:
        """The name of the test Evidently picks for a feature by default."""
        column_type = (
            self.column_type.Numerical if kind == "numeric" else self.column_type.Categorical
        )
        return str(self.default_stattest(clean(reference), clean(current), column_type).name)


@pytest.fixture(scope="session")
def evidently() -> Iterator[Evidently]:
    """Evidently's stattests (the import takes about 10 s, so once per session)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DO_NOT_TRACK", "1")
        with warnings.catch_warnings():  # its import touches numpy.core, deprecated
            warnings.simplefilter("ignore")
            stattests = pytest.importorskip("evidently.legacy.calculations.stattests")
            registry = pytest.importorskip("evidently.legacy.calculations.stattests.registry")
            core = pytest.importorskip("evidently.legacy.core")
        yield Evidently(
            {ours: getattr(stattests, theirs) for ours, theirs in EVIDENTLY_NAMES.items()},
            core.ColumnType,
            registry._get_default_stattest,
        )
