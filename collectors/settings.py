"""Settings of the collectors side, built once at start-up.

Values come from explicit arguments, then ``SIDEWATCH_*`` environment variables, then
the defaults below, and are validated when the object is built.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, HttpUrl, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from collectors.contract import MAX_BATCH_EVENTS, ModelName, VersionName


class ClientSettings(BaseSettings):
    """How the in-process SDK reaches the monitor and how much it may buffer."""

    model_config = SettingsConfigDict(env_prefix="SIDEWATCH_", frozen=True, extra="ignore")

    monitor_url: HttpUrl = HttpUrl("http://127.0.0.1:8700")
    """Base URL of the monitor (``SIDEWATCH_MONITOR_URL``)."""
    token: SecretStr | None = None
    """Bearer token for ingest (``SIDEWATCH_TOKEN``); needed once the monitor has tokens."""
    model: ModelName | None = None
    """Default model name for ``record`` (``SIDEWATCH_MODEL``)."""
    model_version: VersionName | None = None
    """Default model version for ``record`` (``SIDEWATCH_MODEL_VERSION``)."""
    queue_size: int = Field(default=100_000, ge=1, le=10_000_000)
    """Most events held in memory; beyond it ``record`` drops and counts."""
    batch_size: int = Field(default=1_000, ge=1, le=MAX_BATCH_EVENTS)
    max_in_flight: int = Field(default=2, ge=1, le=16)
    """Batches sent at once (one delivery thread and connection each)."""
    flush_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    """Longest an event waits in the queue before a partial batch is sent."""
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    """Timeout of one HTTP call to the monitor."""
    retry_initial_seconds: float = Field(default=0.2, gt=0, le=60)
    retry_max_seconds: float = Field(default=30.0, gt=0, le=3600)
    quarantine_dir: Path = Path("var/sidewatch-quarantine")
    """Where events the monitor will not store are kept, with their reason, to inspect
    and replay with ``sidewatch quarantine`` (``SIDEWATCH_QUARANTINE_DIR``); also the
    events still unshipped when ``close`` runs out of time."""
    quarantine_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    """Most bytes the quarantine keeps; beyond it events are lost and counted."""
