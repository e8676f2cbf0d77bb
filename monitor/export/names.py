"""Every metric the monitor exports, in one place.

Names follow CONVENTIONS.md: the ``sidewatch_`` prefix, base units in the name,
``_total`` for counters, ``_ratio`` for 0..1, ``_info`` for metadata. Labels are
bounded: model, version, feature (capped per version), segment (capped per key), variant,
stage (capped), attribute (the model's sensitive attributes), group (capped per
attribute; numbered unless the model allows its values as labels), split, test,
kind, outcome, output (the model's outputs; per-class ones capped at 20 classes), class
(capped at 20), method (the two multivariate detectors), quantile (five).
"""

from __future__ import annotations

from collectors.naming import MetricName

# The families of the window parts on the registry are defined beside their part (one
# module per part) and named here too, so that this module still lists every family.
from monitor.score.accuracy_part import WINDOW_F1 as WINDOW_F1
from monitor.score.accuracy_part import WINDOW_LOG_LOSS as WINDOW_LOG_LOSS
from monitor.score.accuracy_part import WINDOW_MAE as WINDOW_MAE
from monitor.score.accuracy_part import WINDOW_MAPE as WINDOW_MAPE
from monitor.score.accuracy_part import WINDOW_PRECISION as WINDOW_PRECISION
from monitor.score.accuracy_part import WINDOW_R2 as WINDOW_R2
from monitor.score.accuracy_part import WINDOW_RECALL as WINDOW_RECALL
from monitor.score.accuracy_part import WINDOW_RMSE as WINDOW_RMSE
from monitor.score.accuracy_part import WINDOW_ROC_AUC as WINDOW_ROC_AUC
from monitor.score.correlation_part import CORRELATION_CHANGE_MAX as CORRELATION_CHANGE_MAX
from monitor.score.correlation_part import CORRELATION_DRIFTED_PAIRS as CORRELATION_DRIFTED_PAIRS
from monitor.score.correlation_part import CORRELATION_TESTED_PAIRS as CORRELATION_TESTED_PAIRS
from monitor.score.multivariate_part import MULTIVARIATE_DRIFT_SCORE as MULTIVARIATE_DRIFT_SCORE
from monitor.score.multivariate_part import (
    MULTIVARIATE_DRIFT_THRESHOLD as MULTIVARIATE_DRIFT_THRESHOLD,
)
from monitor.score.multivariate_part import MULTIVARIATE_DRIFTED as MULTIVARIATE_DRIFTED
from monitor.score.quality_part import FEATURE_MISSING as FEATURE_MISSING
from monitor.score.quality_part import FEATURE_NEW_CATEGORIES as FEATURE_NEW_CATEGORIES
from monitor.score.quality_part import FEATURE_OUT_OF_RANGE as FEATURE_OUT_OF_RANGE
from monitor.score.quality_part import FEATURE_TYPE_ERRORS as FEATURE_TYPE_ERRORS
from monitor.score.served import CLASS_LABELS_CUT as CLASS_LABELS_CUT
from monitor.score.served import WINDOW_PREDICTED_CLASS as WINDOW_PREDICTED_CLASS
from monitor.score.served import WINDOW_PREDICTION_SCORE as WINDOW_PREDICTION_SCORE

_MV = ("model", "model_version")

INGESTED_EVENTS = MetricName(
    "sidewatch_ingested_events_total",
    "counter",
    "Events received by ingest, by kind (predictions, labels) and outcome (stored, duplicate; "
    "for labels also unmatched: stored before their prediction).",
    ("model", "kind", "outcome"),
)
INGEST_REJECTED_EVENTS = MetricName(
    "sidewatch_ingest_rejected_events_total",
    "counter",
    "Events of accepted batches that were not stored, by kind and reason (invalid, "
    "unknown_model, forbidden); the answer lists each, the collectors quarantine them.",
    ("kind", "reason"),
)
INGEST_REJECTED = MetricName(
    "sidewatch_ingest_rejected_requests_total",
    "counter",
    "Ingest and admin requests refused, by reason.",
    ("reason",),
)
PREDICTION_LATENCY = MetricName(
    "sidewatch_prediction_latency_seconds",
    "histogram",
    "Model latency reported with each stored prediction.",
    _MV,
)
MODEL_INFO = MetricName(
    "sidewatch_model_info", "info", "A registered model and its task.", ("model", "task")
)
WINDOW_PREDICTIONS = MetricName(
    "sidewatch_window_predictions",
    "gauge",
    "Predictions in the newest closed scoring window.",
    _MV,
)
WINDOW_START = MetricName(
    "sidewatch_window_start_timestamp_seconds",
    "gauge",
    "Start of the newest closed scoring window (epoch seconds).",
    _MV,
)
WINDOW_END = MetricName(
    "sidewatch_window_end_timestamp_seconds",
    "gauge",
    "End of the newest closed scoring window (epoch seconds).",
    _MV,
)
WINDOW_LABEL_COVERAGE = MetricName(
    "sidewatch_window_label_coverage_ratio",
    "gauge",
    "Share of the newest closed window's predictions that have a label by now.",
    _MV,
)
WINDOW_ACCURACY = MetricName(
    "sidewatch_window_accuracy_ratio",
    "gauge",
    "Share of the newest closed window's labelled predictions that were right.",
    _MV,
)
FEATURE_DRIFT_SCORE = MetricName(
    "sidewatch_feature_drift_score",
    "gauge",
    "Drift score of a feature in the newest closed window against the reference, as the "
    "test gives it: a p-value (drift when below the threshold) for ks, chisquare and z, "
    "a distance (drift at or above the threshold) for the others.",
    (*_MV, "feature", "test"),
)
FEATURE_DRIFT_THRESHOLD = MetricName(
    "sidewatch_feature_drift_threshold",
    "gauge",
    "Threshold of the feature's drift test (a p-value below it, or a distance at or above "
    "it, is drift).",
    (*_MV, "feature", "test"),
)
FEATURE_DRIFTED = MetricName(
    "sidewatch_feature_drifted",
    "gauge",
    "1 if the feature drifted in the newest closed window, else 0.",
    (*_MV, "feature", "test"),
)
WINDOW_DRIFTED_FEATURES = MetricName(
    "sidewatch_window_drifted_features_ratio",
    "gauge",
    "Share of the scored features that drifted in the newest closed window.",
    _MV,
)
WINDOW_DATASET_DRIFTED = MetricName(
    "sidewatch_window_dataset_drifted",
    "gauge",
    "1 if the share of drifted features reached the dataset threshold, else 0.",
    _MV,
)
FEATURE_LABELS_CUT = MetricName(
    "sidewatch_feature_series_cut",
    "gauge",
    "Features of a version left out of the per-feature metrics by the label cap.",
    _MV,
)


# -- data quality per feature ----------------------------------------------------------


# -- drift of the model's outputs and of its labels --------------------------------------

PREDICTION_DRIFT_SCORE = MetricName(
    "sidewatch_prediction_drift_score",
    "gauge",
    "How far what the model served (output: its class, score, value or a class's "
    "probability) moved from the reference in the newest closed window: a p-value (drift "
    "when below the threshold) for ks, chisquare and z, a distance (drift at or above it) "
    "for the others.",
    (*_MV, "output", "test"),
)
PREDICTION_DRIFT_THRESHOLD = MetricName(
    "sidewatch_prediction_drift_threshold",
    "gauge",
    "Threshold of the output's drift test (a p-value below it, or a distance at or above "
    "it, is drift).",
    (*_MV, "output", "test"),
)
PREDICTION_DRIFTED = MetricName(
    "sidewatch_prediction_drifted",
    "gauge",
    "1 if what the model served (output) drifted from the reference in the newest closed "
    "window, else 0.",
    (*_MV, "output", "test"),
)
LABEL_DRIFT_SCORE = MetricName(
    "sidewatch_label_drift_score",
    "gauge",
    "How far the true outcomes (labels) of the newest closed window moved from the "
    "reference's: a p-value (drift when below the threshold) for ks, chisquare and z, a "
    "distance (drift at or above it) for the others.",
    (*_MV, "test"),
)
LABEL_DRIFT_THRESHOLD = MetricName(
    "sidewatch_label_drift_threshold",
    "gauge",
    "Threshold of the label drift test (a p-value below it, or a distance at or above it, "
    "is drift).",
    (*_MV, "test"),
)
LABEL_DRIFTED = MetricName(
    "sidewatch_label_drifted",
    "gauge",
    "1 if the true outcomes (labels) of the newest closed window drifted from the "
    "reference's, else 0.",
    (*_MV, "test"),
)

# -- drift across features -----------------------------------------------------------------


# -- what the model served -------------------------------------------------------------


SCORING_LAST_SUCCESS = MetricName(
    "sidewatch_scoring_last_success_timestamp_seconds",
    "gauge",
    "When the scoring loop last finished a pass (epoch seconds).",
    (),
)
SCORING_FAILURES = MetricName(
    "sidewatch_scoring_failures_total",
    "counter",
    "Scoring passes that failed (the log has the error).",
    (),
)

# -- background work: the runner's jobs (monitor/runner.py) ----------------------------
# ``job`` is a registered job's name (``scoring``, ...): a short, fixed set.

BACKGROUND_BACKLOG = MetricName(
    "sidewatch_background_backlog",
    "gauge",
    "Work a background job left waiting after its last run, in the job's own unit "
    "(scoring: windows to score); growing means the job cannot keep up within its budget.",
    ("job",),
)
BACKGROUND_RUNS = MetricName(
    "sidewatch_background_runs_total",
    "counter",
    "Runs of a background job by outcome: done (its work finished), yielded (its time "
    "budget ran out with work left) or error (it failed; the log has the error).",
    ("job", "outcome"),
)
BACKGROUND_RUN_SECONDS = MetricName(
    "sidewatch_background_run_seconds",
    "histogram",
    "How long each run of a background job took (a run stops near its time budget).",
    ("job",),
)
BACKGROUND_BUDGET_SECONDS = MetricName(
    "sidewatch_background_budget_seconds",
    "gauge",
    "Time budget of one run of a background job (configured).",
    ("job",),
)

# -- segments: the newest closed base window, per segment value ----------------------
# ``segment`` is ``key=value`` (e.g. ``region=eu``) for the configured segment keys, at
# most SIDEWATCH_MAX_SEGMENT_VALUES values per key (the most frequent in the window).

_MVS = (*_MV, "segment")

SEGMENT_PREDICTIONS = MetricName(
    "sidewatch_segment_predictions",
    "gauge",
    "Predictions the model made for this segment (for example region=eu) in the newest "
    "closed window.",
    _MVS,
)
SEGMENT_ACCURACY = MetricName(
    "sidewatch_segment_accuracy_ratio",
    "gauge",
    "Share of this segment's predictions in the newest closed window that turned out "
    "right, among those whose true outcome is known by now (0 to 1).",
    _MVS,
)
SEGMENT_LABEL_COVERAGE = MetricName(
    "sidewatch_segment_label_coverage_ratio",
    "gauge",
    "Share of this segment's predictions in the newest closed window whose true outcome "
    "is known by now (0 to 1); accuracy is only as sure as this share is large.",
    _MVS,
)
SEGMENT_DRIFTED_FEATURES = MetricName(
    "sidewatch_segment_drifted_features_ratio",
    "gauge",
    "Share of the model's inputs whose values for this segment in the newest closed "
    "window moved away from the reference data (0 to 1); high means this segment's "
    "traffic no longer looks like what the model was checked on.",
    _MVS,
)
SEGMENT_SERIES_CUT = MetricName(
    "sidewatch_segment_series_cut",
    "gauge",
    "Segment values in the newest closed window that were not scored or exported, "
    "because only the most frequent values per segment key are.",
    _MV,
)

# -- other splits: the newest closed base window, per variant, stage, sensitive group --
# The most frequent SIDEWATCH_MAX_SEGMENT_VALUES values of each (per attribute for
# groups); ``group`` is the value where the model's description allows it as a label
# (``group_labels_allowed``), else its number (``g3``, kept across windows; the admin
# API maps numbers to values).


def _split_families(
    kind: str, labels: tuple[str, ...], which: str
) -> tuple[MetricName, MetricName, MetricName, MetricName]:
    """The four families of one split kind, as the segments' (``which``: what one
    series covers, in the help text)."""
    return (
        MetricName(
            f"sidewatch_{kind}_predictions",
            "gauge",
            f"Predictions the model made for this {which} in the newest closed window.",
            labels,
        ),
        MetricName(
            f"sidewatch_{kind}_accuracy_ratio",
            "gauge",
            f"Share of this {which}'s predictions in the newest closed window that turned "
            "out right, among those whose true outcome is known by now (0 to 1).",
            labels,
        ),
        MetricName(
            f"sidewatch_{kind}_label_coverage_ratio",
            "gauge",
            f"Share of this {which}'s predictions in the newest closed window whose true "
            "outcome is known by now (0 to 1).",
            labels,
        ),
        MetricName(
            f"sidewatch_{kind}_drifted_features_ratio",
            "gauge",
            f"Share of the model's inputs whose values for this {which} in the newest "
            "closed window moved away from the reference data (0 to 1).",
            labels,
        ),
    )


VARIANT_PREDICTIONS, VARIANT_ACCURACY, VARIANT_LABEL_COVERAGE, VARIANT_DRIFTED_FEATURES = (
    _split_families("variant", (*_MV, "variant"), "variant (shadow, or an A/B arm)")
)
STAGE_PREDICTIONS, STAGE_ACCURACY, STAGE_LABEL_COVERAGE, STAGE_DRIFTED_FEATURES = _split_families(
    "stage", (*_MV, "stage"), "pipeline stage"
)
GROUP_PREDICTIONS, GROUP_ACCURACY, GROUP_LABEL_COVERAGE, GROUP_DRIFTED_FEATURES = _split_families(
    "group", (*_MV, "attribute", "group"), "group of a sensitive attribute"
)
SPLIT_SERIES_CUT = MetricName(
    "sidewatch_split_series_cut",
    "gauge",
    "Values of a split (variant, stage, group) in the newest closed window that were not "
    "scored or exported, because only the most frequent values per split key are.",
    (*_MV, "split"),
)

ALL: dict[str, MetricName] = {
    m.name: m
    for m in (
        INGESTED_EVENTS,
        INGEST_REJECTED_EVENTS,
        INGEST_REJECTED,
        PREDICTION_LATENCY,
        MODEL_INFO,
        WINDOW_PREDICTIONS,
        WINDOW_START,
        WINDOW_END,
        WINDOW_LABEL_COVERAGE,
        WINDOW_ACCURACY,
        FEATURE_DRIFT_SCORE,
        FEATURE_DRIFT_THRESHOLD,
        FEATURE_DRIFTED,
        WINDOW_DRIFTED_FEATURES,
        WINDOW_DATASET_DRIFTED,
        FEATURE_LABELS_CUT,
        CLASS_LABELS_CUT,
        WINDOW_PRECISION,
        WINDOW_RECALL,
        WINDOW_F1,
        WINDOW_ROC_AUC,
        WINDOW_LOG_LOSS,
        WINDOW_MAE,
        WINDOW_RMSE,
        WINDOW_MAPE,
        WINDOW_R2,
        FEATURE_MISSING,
        FEATURE_OUT_OF_RANGE,
        FEATURE_NEW_CATEGORIES,
        FEATURE_TYPE_ERRORS,
        PREDICTION_DRIFT_SCORE,
        PREDICTION_DRIFT_THRESHOLD,
        PREDICTION_DRIFTED,
        LABEL_DRIFT_SCORE,
        LABEL_DRIFT_THRESHOLD,
        LABEL_DRIFTED,
        CORRELATION_TESTED_PAIRS,
        CORRELATION_DRIFTED_PAIRS,
        CORRELATION_CHANGE_MAX,
        MULTIVARIATE_DRIFT_SCORE,
        MULTIVARIATE_DRIFT_THRESHOLD,
        MULTIVARIATE_DRIFTED,
        WINDOW_PREDICTED_CLASS,
        WINDOW_PREDICTION_SCORE,
        SCORING_LAST_SUCCESS,
        SCORING_FAILURES,
        BACKGROUND_BACKLOG,
        BACKGROUND_RUNS,
        BACKGROUND_RUN_SECONDS,
        BACKGROUND_BUDGET_SECONDS,
        SEGMENT_PREDICTIONS,
        SEGMENT_ACCURACY,
        SEGMENT_LABEL_COVERAGE,
        SEGMENT_DRIFTED_FEATURES,
        SEGMENT_SERIES_CUT,
        VARIANT_PREDICTIONS,
        VARIANT_ACCURACY,
        VARIANT_LABEL_COVERAGE,
        VARIANT_DRIFTED_FEATURES,
        STAGE_PREDICTIONS,
        STAGE_ACCURACY,
        STAGE_LABEL_COVERAGE,
        STAGE_DRIFTED_FEATURES,
        GROUP_PREDICTIONS,
        GROUP_ACCURACY,
        GROUP_LABEL_COVERAGE,
        GROUP_DRIFTED_FEATURES,
        SPLIT_SERIES_CUT,
    )
}
"""Every metric family the monitor exports, by name."""
