"""The monitor's settings, built once at start-up.

Values come from explicit arguments, then ``SIDEWATCH_*`` environment variables, then
the defaults below; they are validated when the object is built, so a bad value stops
the service before it listens.
"""

from __future__ import annotations

import ipaddress
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from collectors.contract import FeatureName, ModelName

_LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

MiB = 1024 * 1024

DEFAULT_ROLLUPS = (3600, 86400)
"""Hourly and daily windows, where they are multiples of the base window."""


class MonitorSettings(BaseSettings):
    """Everything the monitor (``sidewatch serve``) can be told."""

    model_config = SettingsConfigDict(env_prefix="SIDEWATCH_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    """Interface to listen on (``SIDEWATCH_HOST``); not loopback only with tokens set."""
    port: int = Field(default=8700, ge=1, le=65535)
    database_url: str = "sqlite:///sidewatch.db"
    """SQLAlchemy URL: SQLite file by default, ``postgresql+psycopg://...`` in production."""
    admin_token: SecretStr | None = None
    """Bearer token for registration, reference upload, reads and any ingest."""
    ingest_tokens: dict[str, list[ModelName | str]] = Field(default_factory=dict)
    """Ingest tokens and the models each may write (``"*"``: all), as JSON in
    ``SIDEWATCH_INGEST_TOKENS``, e.g. ``{"s3cret": ["credit-risk"]}``."""
    scrape_token: SecretStr | None = None
    """Bearer token that may read ``/metrics`` and nothing else: give it to Prometheus
    (``authorization: {type: Bearer, credentials_file: ...}``). Once any token is set,
    ``/metrics`` needs this one or the admin token."""
    public_docs: bool = False
    """Serve ``/docs``, ``/redoc`` and ``/openapi.json`` without a token even when tokens
    are configured (by default they then need the admin token)."""
    window_seconds: int = Field(default=300, ge=1, le=7 * 86400)
    """Length of the base tumbling scoring windows (ingest keeps their profiles)."""
    rollup_seconds: list[int] | None = None
    """Lengths of longer time windows, as JSON, each a multiple of ``window_seconds``;
    their drift is scored from the merge of their base windows' profiles. Unset: 3600
    and 86400, those of them that are longer multiples of the window; ``[]``: none."""
    count_window: int = Field(default=0, ge=0, le=10_000_000)
    """Predictions per count window (blocks of N in ingest order); 0: none. Off by
    default: no one N suits both a model serving ten predictions a day and one serving
    thousands a second, and placing predictions in order costs a write per prediction."""
    segment_keys: list[FeatureName] = Field(default_factory=list, max_length=16)
    """Segment keys whose values are scored as windows of their own, as JSON, e.g.
    ``["region"]``."""
    max_segment_values: int = Field(default=20, ge=1, le=1000)
    """Most values scored per split key and window, the most frequent: per segment key,
    of the variants, of the stages, per sensitive attribute. The others are counted in
    ``sidewatch_segment_series_cut`` (segments) and ``sidewatch_split_series_cut``."""
    split_variants: bool = True
    """Score each variant (``shadow``, an A/B arm) of a closed base window as a window of
    its own. A window whose events carry no variant scores none."""
    split_stages: bool = True
    """Score each pipeline stage of a closed base window as a window of its own. A window
    whose events carry no stage scores none."""
    split_sensitive_groups: bool = True
    """Score each group of each categorical sensitive attribute of a model (its
    description's ``sensitive_attributes``) as a window of its own; numeric and boolean
    attributes are left out (see :mod:`monitor.score.loop`)."""
    score_interval_seconds: float = Field(default=15.0, gt=0, le=3600)
    """How often the scoring loop looks for new or changed windows."""
    score_budget_seconds: float = Field(default=60.0, gt=0, le=3600)
    """Most time one scoring pass takes: once spent, the windows left wait and the next
    pass starts as soon as the other background jobs have had their turn (the backlog
    is exported as ``sidewatch_background_backlog{job="scoring"}``)."""
    psi_bins: int = Field(default=10, ge=2, le=1000)
    """Coarse reference-quantile bins of the psi, jensenshannon and hellinger tests."""
    psi_threshold: float = Field(default=0.2, gt=0)
    """PSI at or above which a feature counts as drifted (0.1 watch, 0.2 act)."""
    drift_test: str = "auto"
    """``auto`` (each feature's test chosen by type and reference size, as Evidently
    does) or the name of a test in the drift-test registry
    (:data:`monitor.score.drift.DRIFT_TESTS`: ks, chisquare, z, psi, jensenshannon,
    wasserstein, hellinger), used wherever it applies. An unknown name stops start-up
    with the list of valid ones (the scorer checks it against the registry: settings
    sit below scoring and do not import it)."""
    drift_tests: dict[str, str] = Field(default_factory=dict)
    """Per feature: the test to use, as JSON, e.g. ``{"income": "psi"}``; names are
    checked as for ``drift_test``."""
    drift_fdr: float = Field(default=0.05, ge=0, lt=1)
    """Benjamini-Hochberg false discovery rate over a window's p-value tests (0: off)."""
    drift_share: float = Field(default=0.5, ge=0, le=1)
    """Share of drifted features at which a window's dataset counts as drifted."""
    min_window_events: int = Field(default=30, ge=1)
    """Fewest events a window needs before drift is scored on it."""
    score_sample_rows: int = Field(default=5_000, ge=100, le=1_000_000)
    """Most rows of a window read for data quality, the served classes' shares and the
    score's quantiles, correlation and multivariate drift: a uniform sample when the
    window holds more (results say when they were sampled). Prediction drift reads every
    row."""
    multivariate_method: Literal["pca_reconstruction", "domain_classifier", "off"] = (
        "pca_reconstruction"
    )
    """Multivariate drift detector: ``pca_reconstruction`` (cheap to score),
    ``domain_classifier`` (a classifier telling the window from the reference, about
    0.3 s a window), or ``off``."""
    window_parts: list[str] | None = None
    """The registered window parts to score (:data:`monitor.score.parts.PARTS`), as
    JSON, e.g. ``["accuracy", "predictions"]``; unset: every one. An unknown name stops
    start-up with the list of valid ones (the scorer checks it against the registry).
    Parts not yet on the registry (feature drift, output and label drift) always run."""
    model_window_parts: dict[str, list[str]] = Field(default_factory=dict)
    """Per model: the registered window parts to score, as JSON, e.g.
    ``{"credit": ["accuracy"]}``; a model not named scores ``window_parts``. Names are
    checked as for ``window_parts``."""
    correlation_max_features: int = Field(default=20, ge=2, le=100)
    """Most numeric features whose pairs are tested for correlation drift, in the model's
    order: ``k (k - 1) / 2`` pairs."""
    max_request_bytes: int = Field(default=32 * MiB, ge=1024)
    max_reference_bytes: int = Field(default=256 * MiB, ge=1024)
    max_feature_labels: int = Field(default=100, ge=1, le=10_000)
    """Most features exported per model version; the rest are counted as cut."""
    report_max_rows: int = Field(default=5_000, ge=100, le=1_000_000)
    """Most rows an HTML report samples from a window, and from the reference."""
    report_max_features: int = Field(default=30, ge=1, le=1_000)
    """Most features an HTML report compares (Evidently takes about 0.5 s for each)."""
    prediction_results_retention_seconds: float = Field(default=30 * 86400, gt=0)
    """How long per-prediction results (anomaly flags, explanations) are kept, by the
    prediction's event time: the background runner's ``prediction_results_retention``
    job deletes older ones every hour."""
    log_level: str = "info"

    @model_validator(mode="after")
    def _tokens_or_loopback(self) -> MonitorSettings:
        if not self.auth_enabled and not _is_loopback(self.host):
            raise ValueError(
                f"host {self.host!r} is not loopback but no token is configured: set "
                "SIDEWATCH_ADMIN_TOKEN (and SIDEWATCH_INGEST_TOKENS), or listen on 127.0.0.1"
            )
        for token in self.ingest_tokens:
            if len(token) < 16:
                raise ValueError("ingest tokens must be at least 16 characters long")
        for name, secret in (("ADMIN", self.admin_token), ("SCRAPE", self.scrape_token)):
            if secret is not None and len(secret.get_secret_value()) < 16:
                raise ValueError(f"SIDEWATCH_{name}_TOKEN must be at least 16 characters long")
        return self

    @model_validator(mode="after")
    def _windows_fit(self) -> MonitorSettings:
        w = self.window_seconds
        for seconds in self.rollup_seconds or []:
            if seconds <= w or seconds % w:
                raise ValueError(
                    f"rollup_seconds {seconds} is not a multiple of window_seconds {w} longer "
                    "than it: set SIDEWATCH_ROLLUP_SECONDS to such multiples as JSON (e.g. "
                    f"[{w * 12}]), or to [] for no longer windows"
                )
        if 0 < self.count_window < self.min_window_events:
            raise ValueError(
                f"count_window {self.count_window} is below min_window_events "
                f"{self.min_window_events}, so its blocks would never be scored for drift: "
                "raise SIDEWATCH_COUNT_WINDOW, or set it to 0 to turn count windows off"
            )
        if len(set(self.segment_keys)) != len(self.segment_keys):
            raise ValueError(f"segment_keys repeats a key: {self.segment_keys}")
        return self

    @property
    def rollups(self) -> list[int]:
        """The rollup lengths in effect (the defaults that fit when unset)."""
        if self.rollup_seconds is not None:
            return sorted(set(self.rollup_seconds))
        w = self.window_seconds
        return [s for s in DEFAULT_ROLLUPS if s > w and s % w == 0]

    @property
    def auth_enabled(self) -> bool:
        """Whether any token is configured (then every call but health needs one)."""
        return (
            self.admin_token is not None
            or self.scrape_token is not None
            or bool(self.ingest_tokens)
        )


def _is_loopback(host: str) -> bool:
    if host in _LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
