"""One drift report: sample the window and the reference, run Evidently, wrap its page.

Both sides are bounded samples (``max_rows`` each, drawn uniformly without
replacement), so a report costs about the same for a busy window as for a quiet one.
Evidently's cost grows with the number of columns instead (about half a second per
feature on two cores), so at most ``max_features`` are compared: those the monitor
itself found drifted in the window first, then the others in the order declared.
Nothing here logs or puts into error messages a feature's value: only names, counts
and times. The values do reach the page: :mod:`monitor.report.page` escapes them and
allows only the page's own scripts to run.
"""

from __future__ import annotations

import html
import io
import logging
import os
import re
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from collectors.contract import FeatureSpec, ModelDescription
from monitor.core.windows import window_start as _window_of
from monitor.errors import MissingDependencyError, NotFoundError
from monitor.report.page import library_script, secure
from monitor.score.results import WindowResult
from monitor.store import Store

logger = logging.getLogger("sidewatch.report")

DEFAULT_MAX_ROWS = 5_000
DEFAULT_MAX_FEATURES = 30


@dataclass(frozen=True, slots=True)
class DriftReport:
    """A rendered report and what it compared."""

    model: str
    version: str
    window_start: float
    window_end: float
    window_predictions: int
    """Predictions stored in the window."""
    sampled_predictions: int
    """How many of them the report compares (at most the row cap)."""
    reference_revision: int
    reference_rows: int
    sampled_reference_rows: int
    features: tuple[str, ...]
    """The features compared, in the page's order."""
    features_declared: int
    """How many features the model declares."""
    build_seconds: float
    html: str
    """A complete HTML document; its scripts are inline, it needs no network."""
    content_security_policy: str = ""
    """The policy to serve the page with: only its own inline scripts may run."""

    @property
    def filename(self) -> str:
        """A file name for the saved page: model, version and window start (UTC)."""
        stamp = _utc(self.window_start).strftime("%Y%m%dT%H%M%SZ")
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", f"{self.model}-{self.version}")
        return f"sidewatch-report-{safe}-{stamp}.html"


def build_report(
    store: Store,
    model: str,
    version: str,
    *,
    window_seconds: int,
    window_start: float | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
    max_features: int = DEFAULT_MAX_FEATURES,
    seed: int | None = None,
    clock: Callable[[], float] = time.time,
) -> DriftReport:
    """Compare one window of a model version's predictions with its reference.

    Args:
        store: The monitor's store.
        model: A registered model.
        version: One of its versions.
        window_seconds: The monitor's scoring window length.
        window_start: Any time (epoch seconds) inside the window to report on; by
            default the window of the version's newest stored prediction.
        max_rows: Most rows sampled from the window and from the reference each.
        max_features: Most features compared; the monitor's drifted ones come first.
        seed: Seeds the reference sample (the window sample is drawn by the database).
        clock: Current epoch time, for the page's "generated at" line.

    Returns:
        The report, with its page as one self-contained HTML document.

    Raises:
        NotFoundError: The model, the version, a reference, or predictions in the
            window are missing; the message says what to do.
        MissingDependencyError: Evidently (the ``reports`` extra) is not installed.
    """
    started = time.perf_counter()
    description = store.get_model(model)
    versions = [v for _, v in store.list_versions(model)]
    if version not in versions:
        known = ", ".join(versions[-10:]) or "none yet"
        raise NotFoundError(
            f"model {model!r} has no version {version!r} (newest known: {known}); "
            "events of a new version register it"
        )
    if window_start is None:
        newest = store.newest_prediction_time(model, version)
        if newest is None:
            raise NotFoundError(
                f"{model} {version} has no stored predictions yet; send events first "
                "(POST /v1/ingest/predictions, or a collector)"
            )
        window_start = newest
    start = float(_window_of(window_start, window_seconds))
    end = start + window_seconds
    stored = store.reference_data(model, version)
    if stored is None:
        raise NotFoundError(
            f"{model} {version} has no reference dataset to compare with; upload one "
            f"with PUT /v1/models/{model}/versions/{version}/reference"
        )
    info, data = stored
    total, rows = store.sample_predictions(model, version, start, end, max_rows)
    if total == 0:
        raise NotFoundError(
            f"the window {_iso(start)} to {_iso(end)} of {model} {version} holds no "
            "predictions; leave window_start out for the newest window with data"
        )

    specs = _chosen(store, description, version, start, max_features)
    names = [spec.name for spec in specs]
    current = _typed(pd.DataFrame.from_records([f for f, _ in rows], columns=names), specs)
    reference = pd.read_parquet(io.BytesIO(data), columns=names, engine="pyarrow")
    if len(reference) > max_rows:
        reference = reference.sample(n=max_rows, random_state=np.random.default_rng(seed))
    reference = _typed(reference.reset_index(drop=True), specs)

    page = _render(current, reference, specs)
    seconds = time.perf_counter() - started
    report = DriftReport(
        model=model,
        version=version,
        window_start=start,
        window_end=end,
        window_predictions=total,
        sampled_predictions=len(current),
        reference_revision=info.revision,
        reference_rows=info.rows,
        sampled_reference_rows=len(reference),
        features=tuple(names),
        features_declared=len(description.features),
        build_seconds=seconds,
        html="",
    )
    logger.info(
        "report on %s %s, window %s: %d of %d predictions against %d of %d reference rows "
        "(revision %d) in %.2f s",
        model,
        version,
        _iso(start),
        report.sampled_predictions,
        total,
        report.sampled_reference_rows,
        info.rows,
        info.revision,
        seconds,
    )
    html, policy = _wrap(page, report, clock())
    return replace(report, html=html, content_security_policy=policy)


def _chosen(
    store: Store, model: ModelDescription, version: str, start: float, cap: int
) -> list[FeatureSpec]:
    """At most ``cap`` features: the ones drifted in the window's stored result first."""
    specs = list(model.features)
    if len(specs) <= cap:
        return specs
    drifted: set[str] = set()
    found = store.window_results(model.name, version, since=start, until=start, limit=10)
    if found:  # the base window: the shortest of those starting there (rollups are longer)
        base = min(found, key=lambda r: r.window_end - r.window_start)
        drifted = {d.feature for d in WindowResult.from_record(base).drift if d.drifted}
    ordered = [s for s in specs if s.name in drifted] + [s for s in specs if s.name not in drifted]
    return ordered[:cap]


def _typed(frame: pd.DataFrame, specs: Sequence[FeatureSpec]) -> pd.DataFrame:
    """Numbers as float64, categories and booleans as strings, missing as NaN/None."""
    columns: dict[str, pd.Series[Any]] = {}
    for spec in specs:
        column = frame[spec.name]
        if spec.type == "numeric":
            columns[spec.name] = pd.to_numeric(column, errors="coerce").astype("float64")
        else:
            # str() on both sides: a CSV reference may hold 1 where events hold "1".
            columns[spec.name] = column.map(lambda v: None if _missing(v) else str(v)).astype(
                object
            )
    return pd.DataFrame(columns, index=frame.index)


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _render(current: pd.DataFrame, reference: pd.DataFrame, specs: Sequence[FeatureSpec]) -> str:
    ev = _evidently()
    numeric = [s.name for s in specs if s.type == "numeric"]
    categorical = [s.name for s in specs if s.type != "numeric"]
    definition = ev["DataDefinition"](numerical_columns=numeric, categorical_columns=categorical)
    report = ev["Report"]([ev["DataDriftPreset"](), ev["DataSummaryPreset"]()])
    with warnings.catch_warnings():
        # A category the reference never had has an expected count of zero in
        # Evidently's chi-squared: numpy warns about the division, and Evidently reports
        # an infinite statistic (drifted), which is the answer. Where warnings are
        # errors, the warning must not turn the report into a failure.
        warnings.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(
            ev["Dataset"].from_pandas(current, data_definition=definition),
            ev["Dataset"].from_pandas(reference, data_definition=definition),
        )
    page: str = snapshot.get_html_str(as_iframe=False)
    return page


def _library() -> str:
    """Evidently's script bundle, as its page inlines it."""
    from evidently.legacy.utils.dashboard import STATIC_PATH

    return library_script(Path(STATIC_PATH))


def _evidently() -> dict[str, Any]:
    """Evidently's entry points, imported on first use with its telemetry off."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    try:
        with warnings.catch_warnings():
            # Evidently 0.7 touches numpy.core at import, which numpy 2 deprecates, and
            # has invalid escapes in docstrings (SyntaxWarning on first compile).
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", SyntaxWarning)
            from evidently import DataDefinition, Dataset, Report
            from evidently.presets import DataDriftPreset, DataSummaryPreset
    except ImportError as exc:
        raise MissingDependencyError("evidently", "reports") from exc
    return {
        "DataDefinition": DataDefinition,
        "Dataset": Dataset,
        "Report": Report,
        "DataDriftPreset": DataDriftPreset,
        "DataSummaryPreset": DataSummaryPreset,
    }


def _wrap(page: str, report: DriftReport, now: float) -> tuple[str, str]:
    """Evidently's page, made safe, with a title and a header saying what was compared;
    and its Content-Security-Policy."""
    e = html.escape
    title = f"Sidewatch report: {report.model} {report.version}, window {_iso(report.window_start)}"
    lines: Sequence[str] = (
        f"Window {_iso(report.window_start)} to {_iso(report.window_end)} "
        f"(window_start={report.window_start:.0f}).",
        f"Current: {report.sampled_predictions:,} predictions drawn at random from the "
        f"{report.window_predictions:,} in the window.",
        f"Reference: revision {report.reference_revision}, {report.sampled_reference_rows:,} "
        f"of its {report.reference_rows:,} rows.",
        f"Features: all {report.features_declared}."
        if len(report.features) == report.features_declared
        else f"Features: {len(report.features)} of {report.features_declared}, those the "
        "monitor found drifted in this window first (SIDEWATCH_REPORT_MAX_FEATURES).",
        "Evidently picks its own test per column, so its verdicts can differ from the "
        "monitor's drift scores on the dashboards.",
        f"Generated {_iso(now)} in {report.build_seconds:.1f} s.",
    )
    header = (
        '\n<header id="sidewatch-report" style="font-family: Roboto, Helvetica, Arial, '
        'sans-serif; padding: 12px 24px; border-bottom: 1px solid #ddd">'
        f'<h1 style="font-size: 20px; margin: 0 0 6px">{e(title)}</h1>'
        + "".join(f'<p style="margin: 2px 0">{e(line)}</p>' for line in lines)
        + "</header>\n"
    )
    safe = secure(page, title=e(title), header=header, library=_library())
    return safe.html, safe.content_security_policy


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


def _iso(ts: float) -> str:
    return _utc(ts).strftime("%Y-%m-%d %H:%M:%S UTC")
