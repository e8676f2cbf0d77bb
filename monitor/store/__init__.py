"""Store: validated events, labels, models and references in; rows and results out.

SQLModel over SQLite (a WAL file, the default) or PostgreSQL, through the same code.
The schema is managed by Alembic migrations that run at start-up.
"""

from monitor.store.store import ReferenceInfo, Store

__all__ = ["ReferenceInfo", "Store"]
