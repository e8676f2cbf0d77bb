"""The store's one facade: every SQL statement the monitor runs is behind :class:`Store`.

Stage: store. In: a database URL. Out: :class:`Store`, whose methods come from one
class per table family, each in its own module:

| module | tables |
|---|---|
| ``_engine`` | none: the engine, migrations, the write lock, WAL checkpoints |
| ``_models`` | ``models``, ``model_versions``, ``reference_datasets`` |
| ``_events`` | ``predictions``, ``labels``, ``ingest_order`` |
| ``_profiles`` | ``feature_profiles`` |
| ``_windows`` | ``window_results`` |
| ``_prediction_results`` | ``prediction_results`` |

Each family's class extends :class:`~monitor.store._engine.StoreBase` and nothing else
(one level: no family calls another's methods; the profile merge that ingest runs in
its transaction is a function of ``_profiles``).
"""

from __future__ import annotations

from monitor.store._engine import _MIGRATIONS as _MIGRATIONS  # the migrations' tests
from monitor.store._events import EventKey, EventTables, Labelled, Labelless
from monitor.store._models import ModelTables, ReferenceInfo
from monitor.store._prediction_results import PredictionResultTables, ResultCursor
from monitor.store._profiles import STALE_BINS, ProfileDeltas, ProfileTables
from monitor.store._windows import WindowTables

__all__ = [
    "STALE_BINS",
    "EventKey",
    "Labelled",
    "Labelless",
    "ProfileDeltas",
    "ReferenceInfo",
    "ResultCursor",
    "Store",
]


class Store(ModelTables, EventTables, ProfileTables, WindowTables, PredictionResultTables):
    """SQL storage for one monitor.

    Args:
        url: SQLAlchemy database URL (``sqlite:///path.db`` or
            ``postgresql+psycopg://user@host/db``).

    Raises:
        ConfigError: The URL names a database that Sidewatch does not support.
    """
