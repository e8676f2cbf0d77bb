"""Ingest: HTTP requests in (events, labels, models, references), stored rows out.

``create_app`` builds the FastAPI application from a :class:`MonitorSettings`.
"""

from monitor.api.app import create_app

__all__ = ["create_app"]
