"""Settings of the sidecar, built once at start-up.

Values come from explicit arguments (the ``sidewatch sidecar`` flags), then
``SIDEWATCH_SIDECAR_*`` environment variables, then the defaults below. Where the
monitor is and the ingest token are shared with the SDK: ``SIDEWATCH_MONITOR_URL``,
``SIDEWATCH_TOKEN``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from collectors.contract import ID_PATTERN, ModelName, VersionName

_MIB = 1024 * 1024
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


def split_address(value: str, default_port: int) -> tuple[str, int]:
    """``host:port`` (or ``:port``) to a pair; ``[::1]:80`` for IPv6."""
    host, sep, port = value.rpartition(":")
    if not sep:
        return value or "0.0.0.0", default_port
    return host.strip("[]") or "0.0.0.0", int(port)


class SidecarSettings(BaseSettings):
    """What the sidecar proxies, what it captures and where it keeps it."""

    model_config = SettingsConfigDict(env_prefix="SIDEWATCH_SIDECAR_", frozen=True,
                                      extra="ignore")  # fmt: skip

    upstream: str | None = None
    """The model server, ``http://host:port``; unset for a tap-only sidecar."""
    listen: str = "0.0.0.0:8081"
    """Where callers reach the proxy."""
    admin_listen: str = "0.0.0.0:9402"
    """``/metrics``, ``/livez`` and ``/readyz``."""
    tap_listen: str | None = None
    """Where KServe's payload logger posts CloudEvents (off when unset)."""
    model: ModelName | None = None
    """Model name for the events; default: the name in the request path."""
    model_version: VersionName | None = None
    """Model version; default: the version in the path or the response."""
    variant: str | None = Field(default=None, max_length=64, pattern=ID_PATTERN)
    """Tags every captured event: ``shadow`` (a model whose answers are not served), or
    the A/B arm this proxy serves."""
    stage: str | None = Field(default=None, max_length=64, pattern=ID_PATTERN)
    """Tags every captured event: the pipeline stage of the model behind this proxy."""
    task: Literal["auto", "classification", "regression"] = "auto"
    feature_names: tuple[str, ...] = ()
    """Names of the columns of an unnamed input matrix, in order."""
    class_names: tuple[str, ...] = ()
    """Names of the probability columns, in order."""
    spool_dir: Path = Path("var/sidecar-spool")
    spool_max_bytes: int = Field(default=256 * _MIB, ge=_MIB)
    capture_max_bytes: int = Field(default=_MIB, ge=1024, le=64 * _MIB)
    """Largest body copied for capture (as sent); larger bodies pass uncaptured."""
    decoded_max_bytes: int = Field(default=8 * _MIB, ge=1024, le=256 * _MIB)
    """Largest body after decompression (a gzip bomb stops here)."""
    sample_rate: float = Field(default=1.0, gt=0, le=1)
    """Share of 2xx exchanges captured (the model's errors are counted, never captured)."""
    correlation_header: str = "x-request-id"
    header_timeout_seconds: float = Field(default=15.0, gt=0, le=3600)
    """Longest a caller may take to send a request head once it began (slowloris); the
    connection is then answered 408 and closed."""
    idle_timeout_seconds: float = Field(default=60.0, gt=0, le=86400)
    """Longest a caller connection may stay open with no request under way."""
    body_timeout_seconds: float = Field(default=30.0, gt=0, le=3600)
    """Window over which a request body must arrive at ``body_min_rate_bytes`` a second
    at least, or the connection is closed (time the model takes to read is not
    counted)."""
    body_min_rate_bytes: int = Field(default=1024, ge=0)
    """Slowest request body accepted, bytes per second over ``body_timeout_seconds``."""
    max_connections: int | None = Field(default=None, ge=1)
    """Most caller connections open at once; default from the file limit
    (``RLIMIT_NOFILE``: each connection takes two descriptors), at most 4,096. At the
    cap, a new connection closes the oldest one that has no request under way;
    refused if every one has."""
    strip_headers: frozenset[str] = frozenset({"x-api-key", "api-key", "x-auth-token"})
    """Headers cut from the copy of each exchange before it is spooled, beside the
    credentials that always are (Authorization, Proxy-Authorization, Cookie,
    Set-Cookie). The model receives every header as sent."""
    allow_features: frozenset[str] = frozenset()
    deny_features: frozenset[str] = frozenset()
    redact_features: frozenset[str] = frozenset()
    redact_mode: Literal["hash", "drop"] = "hash"
    redaction_key: SecretStr | None = None
    map_path: str | None = None
    """Regular expression of request paths decoded through the field mapping."""
    map_features: str | None = None
    map_predicted_class: str | None = None
    map_score: str | None = None
    map_value: str | None = None
    map_probabilities: str | None = None
    batch_size: int = Field(default=1_000, ge=1, le=10_000)
    ship_linger_seconds: float = Field(default=0.5, ge=0, le=60)
    """After a batch that was not full, how long the shipper lets records gather before
    it reads again: fewer, fuller batches cost less CPU beside the model."""
    shipper_nice: int = Field(default=10, ge=0, le=19)
    """Scheduling niceness of the shipper process (decoding and shipping)."""
    shipper_idle: bool = True
    """Run the shipper under ``SCHED_IDLE`` (Linux): it takes only CPU time that nothing
    else on the node wants, and the spool absorbs what it has not shipped yet. Off, it
    runs at ``shipper_nice``, which still takes its share beside a busy model."""

    @field_validator("upstream")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError("upstream must be http://host:port (TLS terminates before "
                             "the sidecar)")  # fmt: skip
        return value

    @field_validator("strip_headers")
    @classmethod
    def _header_names(cls, value: frozenset[str]) -> frozenset[str]:
        bad = sorted(n for n in value if not _TOKEN.match(n))
        if bad:
            raise ValueError(f"strip_headers holds names that are no HTTP header name: {bad}")
        return frozenset(n.lower() for n in value)

    @model_validator(mode="after")
    def _consistent(self) -> SidecarSettings:
        if self.upstream is None and self.tap_listen is None:
            raise ValueError("set upstream (proxy mode) or tap_listen (tap mode), or both")
        if (self.map_path is None) != (self.map_features is None):
            raise ValueError("map_path and map_features go together")
        if (
            self.redact_features
            and self.redact_mode == "hash"
            and (self.redaction_key is None or len(self.redaction_key.get_secret_value()) < 16)
        ):
            raise ValueError("hash redaction needs redaction_key, at least 16 characters")
        return self

    def upstream_address(self) -> tuple[str, int]:
        """Host and port of the upstream."""
        assert self.upstream is not None
        parts = urlsplit(self.upstream)
        assert parts.hostname is not None
        return parts.hostname, parts.port or 80
