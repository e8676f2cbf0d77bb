"""Builds the Grafana dashboards (classic JSON) from the panel lists below.

Run ``python dashboards/build.py`` after changing a panel; the JSON files it writes are
committed, and a test fails if they differ from what this script makes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'model=~"$model", model_version=~"$model_version"'
MONITOR_URL = "http://localhost:8700"
"""Where browsers reach the monitor (docker-compose.yml publishes it on 8700): the
``monitor_url`` constant of the model dashboard, used by its links to the report."""
REPORT_PATH = "/v1/models/{model}/versions/{version}/report"

STATUS = {0: ("healthy", "green"), 1: ("drifting", "orange"), 2: ("degraded", "red")}
"""The codes of the recording rule ``model_version:sidewatch_status:max`` (see
alerts/recording_rules.yml), and the word and colour the overview shows for each."""

UP = {0: ("down", "red"), 1: ("up", "green")}
"""``up``: whether Prometheus could scrape a target."""


class Panel(NamedTuple):
    """One panel: its type, title, description, unit and [(PromQL, legend)]."""

    kind: str
    title: str
    description: str
    unit: str
    targets: list[tuple[str, str]]
    words: dict[int, tuple[str, str]] | None = None
    """Value mappings of a status panel: code → (word, colour)."""


def mappings(words: dict[int, tuple[str, str]]) -> list[dict[str, Any]]:
    """Grafana value mappings that show each code as its word, in its colour."""
    return [
        {
            "type": "value",
            "options": {
                str(code): {"text": text, "color": color, "index": i}
                for i, (code, (text, color)) in enumerate(sorted(words.items()))
            },
        }
    ]


def panel(i: int, spec: Panel) -> dict[str, Any]:
    kind, title, description, unit, targets, words = spec
    defaults: dict[str, Any] = {"unit": unit}
    options: dict[str, Any] = {}
    if words is not None:
        defaults["mappings"] = mappings(words)
        # The words and their colours, not a number on a threshold colour.
        options = {
            "colorMode": "background",
            "graphMode": "none",
            "textMode": "value_and_name",
            "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
        }
    return {
        "id": i + 1,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
        "fieldConfig": {"defaults": defaults, "overrides": []},
        "options": options,
        "targets": [
            {"refId": chr(65 + n), "datasource": DS, "expr": expr, "legendFormat": legend}
            for n, (expr, legend) in enumerate(targets)
        ],
    }


def variable(name: str, query: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": name.replace("_", " "),
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,
        "includeAll": True,
        "multi": True,
        "allValue": ".*",
        "current": {"text": "All", "value": "$__all"},
    }


def report_url(model: str, version: str) -> str:
    """The monitor's HTML report of the newest window, as a Grafana link URL."""
    return "${monitor_url}" + REPORT_PATH.format(model=model, version=version)


REPORT_VARIABLE = {
    "name": "monitor_url",
    "label": "monitor URL",
    "type": "constant",
    "query": MONITOR_URL,
    "hide": 2,
}

REPORT_DASHBOARD_LINK = {
    "title": "Evidently report: newest window",
    "tooltip": "The monitor's HTML drift report of the selected model and version "
    "(pick one of each)",
    "type": "link",
    "icon": "doc",
    "url": report_url("${model}", "${model_version}"),
    "targetBlank": True,
    "asDropdown": False,
    "includeVars": False,
    "keepTime": False,
    "tags": [],
}

REPORT_DATA_LINK = {
    "title": "Evidently report of ${__field.labels.model} ${__field.labels.model_version}",
    "url": report_url("${__field.labels.model}", "${__field.labels.model_version}"),
    "targetBlank": True,
}


def dashboard(
    uid: str,
    title: str,
    description: str,
    panels: list[Panel],
    *,
    report_links: bool = False,
) -> dict[str, Any]:
    built = [panel(i, p) for i, p in enumerate(panels)]
    if report_links:
        # Every series of the model dashboard names its model and version: a click on
        # one opens that version's report.
        for p in built:
            p["fieldConfig"]["defaults"]["links"] = [REPORT_DATA_LINK]
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["sidewatch"],
        "timezone": "browser",
        "schemaVersion": 39,
        "version": 1,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {
            "list": [
                {
                    "name": "datasource",
                    "label": "data source",
                    "type": "datasource",
                    "query": "prometheus",
                    "current": {},
                },
                variable("model", "label_values(sidewatch_model_info, model)"),
                variable(
                    "model_version",
                    'label_values(sidewatch_window_predictions{model=~"$model"}, model_version)',
                ),
                *([REPORT_VARIABLE] if report_links else []),
            ]
        },
        "links": [REPORT_DASHBOARD_LINK] if report_links else [],
        "panels": built,
    }


OVERVIEW: list[Panel] = [
    Panel(
        "stat",
        "Model status",
        "Healthy: the model's inputs look like the data it was trained on and it is right "
        "as often as last week. Drifting: a large share of its inputs (half, unless "
        "configured otherwise) look different. Degraded: it is right less often than "
        "last week, by more than a tenth, with enough known outcomes to be sure. The "
        "worst of the selected versions.",
        "none",
        [(f"max by (model) (model_version:sidewatch_status:max{{{SEL}}})", "{{model}}")],
        STATUS,
    ),
    Panel(
        "timeseries",
        "Share of inputs that look different",
        "Of the inputs checked in the newest window, the share that differ from the "
        "training data. At half (unless configured otherwise) the model counts as drifting.",
        "percentunit",
        [(f"sidewatch_window_drifted_features_ratio{{{SEL}}}", "{{model}} {{model_version}}")],
    ),
    Panel(
        "stat",
        "Inputs drifting now",
        "How many of the model's inputs look different from "
        "the data it was trained on. 0 is healthy.",
        "none",
        [(f"sum by (model) (sidewatch_feature_drifted{{{SEL}}})", "{{model}}")],
    ),
    Panel(
        "timeseries",
        "Share of predictions that were right",
        "Accuracy, from the true "
        "outcomes received so far. Recent windows fill in as outcomes arrive.",
        "percentunit",
        [(f"sidewatch_window_accuracy_ratio{{{SEL}}}", "{{model}} {{model_version}}")],
    ),
    Panel(
        "timeseries",
        "Share of predictions with a known outcome",
        "Label coverage: below about 30% the accuracy above is not yet reliable.",
        "percentunit",
        [(f"sidewatch_window_label_coverage_ratio{{{SEL}}}", "{{model}} {{model_version}}")],
    ),
    Panel(
        "timeseries",
        "Predictions per second",
        "How much the model is used.",
        "reqps",
        [
            (
                'sum by (model) (rate(sidewatch_ingested_events_total{kind="predictions", '
                'outcome="stored", model=~"$model"}[$__rate_interval]))',
                "{{model}}",
            )
        ],
    ),
    Panel(
        "timeseries",
        "Accelerator cost per 1,000 predictions",
        "Hardware cost of serving, in "
        "the configured currency, per thousand predictions over the last hour.",
        "short",
        [
            (
                'model:sidewatch_accelerator_cost_per_1k_predictions:rate1h{model=~"$model"}',
                "{{model}}",
            )
        ],
    ),
]

MODEL: list[Panel] = [
    Panel(
        "timeseries",
        "Drift per input",
        "The drift score of each input against the reference, per scored window: a "
        "p-value for ks, chisquare and z (drift when below the threshold), a distance "
        "for the other tests (drift at or above it).",
        "none",
        [(f"sidewatch_feature_drift_score{{{SEL}}}", "{{feature}} ({{test}})")],
    ),
    Panel(
        "state-timeline",
        "Drift over time",
        "Which inputs were drifted (1) in each window.",
        "none",
        [(f"sidewatch_feature_drifted{{{SEL}}}", "{{feature}}")],
    ),
    Panel(
        "timeseries",
        "Drift thresholds",
        "The value of each test at which an input counts as drifted.",
        "none",
        [(f"sidewatch_feature_drift_threshold{{{SEL}}}", "{{feature}} ({{test}})")],
    ),
    Panel(
        "timeseries",
        "Predictions per window",
        "Events in the newest closed window.",
        "none",
        [(f"sidewatch_window_predictions{{{SEL}}}", "{{model_version}}")],
    ),
    Panel(
        "timeseries",
        "Model latency, 95th percentile",
        "As reported with each prediction.",
        "s",
        [
            (
                "histogram_quantile(0.95, sum by (le, model, model_version) (rate("
                f"sidewatch_prediction_latency_seconds_bucket{{{SEL}}}[$__rate_interval])))",
                "{{model_version}}",
            )
        ],
    ),
    Panel(
        "stat",
        "Inputs left out of the metrics",
        "Inputs beyond the per-version series cap: see the API for all.",
        "none",
        [(f"sidewatch_feature_series_cut{{{SEL}}}", "")],
    ),
    Panel(
        "timeseries",
        "Pairs of inputs whose relationship changed",
        "Correlation drift: of the pairs of numeric inputs tested, how many changed how "
        "they move together (Fisher's z test against the reference). A change here with "
        "no single input drifting means the inputs are mixed differently, not shifted.",
        "none",
        [
            (f"sidewatch_correlation_drifted_pairs{{{SEL}}}", "changed {{model_version}}"),
            (f"sidewatch_correlation_tested_pairs{{{SEL}}}", "tested {{model_version}}"),
        ],
    ),
    Panel(
        "timeseries",
        "Largest change in a correlation",
        "The largest absolute change, between the reference and the window, of the "
        "correlation of any tested pair of inputs (0: none, 2: reversed completely).",
        "none",
        [(f"sidewatch_correlation_change_max{{{SEL}}}", "{{model_version}}")],
    ),
    Panel(
        "timeseries",
        "All inputs together",
        "Multivariate drift: how unlike the reference the window's inputs are taken "
        "together (PCA reconstruction error, or a domain classifier's AUC), against the "
        "threshold fitted on the reference. Above the threshold is drift.",
        "none",
        [
            (f"sidewatch_multivariate_drift_score{{{SEL}}}", "{{method}} {{model_version}}"),
            (
                f"sidewatch_multivariate_drift_threshold{{{SEL}}}",
                "threshold {{method}} {{model_version}}",
            ),
        ],
    ),
    Panel(
        "timeseries",
        "Missing values",
        "Share of each input's values that were missing in the newest window.",
        "percentunit",
        [(f"sidewatch_feature_missing_ratio{{{SEL}}}", "{{feature}}")],
    ),
    Panel(
        "timeseries",
        "Values outside the reference's range",
        "Share of each numeric input's values below the reference's smallest or above "
        "its largest value.",
        "percentunit",
        [(f"sidewatch_feature_out_of_range_ratio{{{SEL}}}", "{{feature}}")],
    ),
    Panel(
        "timeseries",
        "Values of the wrong type",
        "Share of each input's values whose type does not match the model's description "
        "(text where a number is expected, for example).",
        "percentunit",
        [(f"sidewatch_feature_type_errors_ratio{{{SEL}}}", "{{feature}}")],
    ),
    Panel(
        "timeseries",
        "New categories",
        "Distinct values of each categorical input that the reference never had.",
        "none",
        [(f"sidewatch_feature_new_categories{{{SEL}}}", "{{feature}}")],
    ),
    Panel(
        "timeseries",
        "What the model predicts",
        "Share of the newest window's predictions per predicted class.",
        "percentunit",
        [(f"sidewatch_window_predicted_class_ratio{{{SEL}}}", "{{class}}")],
    ),
    Panel(
        "timeseries",
        "Predicted scores",
        "Quantiles of the served score (the positive class's probability) or, for a "
        "regression model, of the predicted value, in the newest window.",
        "none",
        [(f"sidewatch_window_prediction_score{{{SEL}}}", "q{{quantile}} {{model_version}}")],
    ),
    Panel(
        "timeseries",
        "Prediction drift",
        "Drift of the model's outputs against the predictions in the reference, with the "
        "same tests as the inputs: a p-value for ks, chisquare and z (drift when below the "
        "threshold), a distance for the others (drift at or above it).",
        "none",
        [(f"sidewatch_prediction_drift_score{{{SEL}}}", "{{output}} ({{test}})")],
    ),
    Panel(
        "timeseries",
        "Label drift",
        "Drift of the true outcomes received for the window against the reference's "
        "targets: the world changed, whatever the model does.",
        "none",
        [(f"sidewatch_label_drift_score{{{SEL}}}", "{{model_version}} ({{test}})")],
    ),
    Panel(
        "timeseries",
        "Classification quality",
        "From the outcomes received so far: precision (of the predicted positives, the "
        "share that were), recall (of the actual positives, the share found), F1 and ROC "
        "AUC. Multiclass models show macro averages.",
        "percentunit",
        [
            (f"sidewatch_window_{name}_ratio{{{SEL}}}", f"{label} {{{{model_version}}}}")
            for name, label in (
                ("precision", "precision"),
                ("recall", "recall"),
                ("f1", "F1"),
                ("roc_auc", "ROC AUC"),
            )
        ],
    ),
    Panel(
        "timeseries",
        "Log loss",
        "How confident the model was in wrong answers, from the outcomes received so "
        "far: lower is better; it rises before accuracy falls.",
        "none",
        [(f"sidewatch_window_log_loss{{{SEL}}}", "{{model_version}}")],
    ),
    Panel(
        "timeseries",
        "Size of the errors",
        "Regression models: the mean absolute error and the root mean squared error, "
        "in the unit of the predicted value.",
        "none",
        [
            (f"sidewatch_window_mae{{{SEL}}}", "MAE {{model_version}}"),
            (f"sidewatch_window_rmse{{{SEL}}}", "RMSE {{model_version}}"),
        ],
    ),
    Panel(
        "timeseries",
        "Relative error",
        "Regression models: the mean absolute percentage error.",
        "percentunit",
        [(f"sidewatch_window_mape_ratio{{{SEL}}}", "{{model_version}}")],
    ),
    Panel(
        "timeseries",
        "Variance explained",
        "Regression models: R², 1 for perfect predictions, 0 for no better than the "
        "mean, below 0 for worse.",
        "none",
        [(f"sidewatch_window_r2{{{SEL}}}", "{{model_version}}")],
    ),
    Panel(
        "timeseries",
        "Accuracy by segment",
        "Share of each segment's labelled predictions that were right in the newest "
        "window (segments as configured, e.g. by region).",
        "percentunit",
        [(f"sidewatch_segment_accuracy_ratio{{{SEL}}}", "{{segment}}")],
    ),
    Panel(
        "timeseries",
        "Label coverage by segment",
        "Share of each segment's predictions with a known outcome: where it is low, that "
        "segment's accuracy is not yet reliable.",
        "percentunit",
        [(f"sidewatch_segment_label_coverage_ratio{{{SEL}}}", "{{segment}}")],
    ),
    Panel(
        "timeseries",
        "Drift by segment",
        "Share of each segment's inputs that drifted in the newest window.",
        "percentunit",
        [(f"sidewatch_segment_drifted_features_ratio{{{SEL}}}", "{{segment}}")],
    ),
    Panel(
        "timeseries",
        "Predictions by segment",
        "Predictions per segment in the newest window; segments beyond the cap are left "
        "out (see the next panel).",
        "none",
        [(f"sidewatch_segment_predictions{{{SEL}}}", "{{segment}}")],
    ),
    Panel(
        "stat",
        "Segments left out of the metrics",
        "Segment values beyond the per-version cap: see the API for all.",
        "none",
        [(f"sidewatch_segment_series_cut{{{SEL}}}", "")],
    ),
]

SIDECAR_MODEL = 'model=~"$model"'

OPERATIONS: list[Panel] = [
    Panel(
        "timeseries",
        "Requests through the sidecar",
        "Requests callers sent to each model through its sidecar, by the answer's status "
        "class: 2xx answered, 4xx refused as the caller's mistake, 5xx failed.",
        "reqps",
        [
            (
                "sum by (model, code) (rate(sidewatch_sidecar_requests_total"
                f"{{{SIDECAR_MODEL}}}[$__rate_interval]))",
                "{{model}} {{code}}",
            )
        ],
    ),
    Panel(
        "timeseries",
        "Share of requests that failed",
        "Requests the model server failed to answer (status 5xx, or unreachable) out of "
        "all requests. 0 is healthy; callers see these failures.",
        "percentunit",
        [
            (
                # A model with no failures has no 5xx series: it shows 0, not a gap.
                "(sum by (model) (rate(sidewatch_sidecar_requests_total"
                f'{{code="5xx", {SIDECAR_MODEL}}}[$__rate_interval]))'
                " or 0 * sum by (model) (rate(sidewatch_sidecar_requests_total"
                f"{{{SIDECAR_MODEL}}}[$__rate_interval])))"
                " / sum by (model) (rate(sidewatch_sidecar_requests_total"
                f"{{{SIDECAR_MODEL}}}[$__rate_interval]))",
                "{{model}}",
            )
        ],
    ),
    Panel(
        "timeseries",
        "Model response time",
        "How long callers waited for the model's answer, through the sidecar: the median "
        "request (p50) and the slowest 1 in 100 (p99).",
        "s",
        [
            (
                f"histogram_quantile({q}, sum by (le, model) (rate("
                f"sidewatch_sidecar_upstream_latency_seconds_bucket{{{SIDECAR_MODEL}}}"
                "[$__rate_interval])))",
                f"{{{{model}}}} {name}",
            )
            for q, name in (("0.5", "p50"), ("0.99", "p99"))
        ],
    ),
    Panel(
        "timeseries",
        "Requests against the same time last week",
        "Requests per second now and at the same time last week (the 30 minutes around "
        "it). The request-rate anomaly alert fires when now is under half or over twice "
        "last week's for 15 minutes.",
        "reqps",
        [
            (f"model:sidewatch_sidecar_requests:rate5m{{{SIDECAR_MODEL}}}", "{{model}} now"),
            (
                f"model:sidewatch_sidecar_requests:rate5m_last_week{{{SIDECAR_MODEL}}}",
                "{{model}} last week",
            ),
        ],
    ),
    Panel(
        "timeseries",
        "Response time against its usual band",
        "The slowest 1 in 20 requests (p95) and the top of its usual band: the median of "
        "the past 6 hours plus three interquartile ranges plus a tenth. Above the band "
        "for 10 minutes, the latency anomaly alert fires.",
        "s",
        [
            (
                f"model:sidewatch_sidecar_upstream_latency_seconds:p95_5m{{{SIDECAR_MODEL}}}",
                "{{model}} p95",
            ),
            (
                "model:sidewatch_sidecar_upstream_latency_seconds:p95_5m_upper_band"
                f"{{{SIDECAR_MODEL}}}",
                "{{model}} band top",
            ),
        ],
    ),
    Panel(
        "stat",
        "Sidecar up",
        "Whether Prometheus can reach each sidecar. Down: the monitor sees nothing from "
        "that model, and if the proxy is down too its callers get no answers.",
        "none",
        [('up{job="sidecar"}', "{{instance}}")],
        UP,
    ),
    Panel(
        "timeseries",
        "Requests not captured",
        "Requests the sidecar passed to the model but could not record for monitoring, by "
        "reason (malformed_json: a request that was not valid JSON; spool_full: the buffer "
        "was full; model_error: the model answered 4xx/5xx, no prediction). Callers are "
        "unaffected; the monitor sees less than the model served.",
        "cps",
        [
            (
                "sum by (reason) (rate(sidewatch_sidecar_capture_dropped_total[$__rate_interval]))",
                "{{reason}}",
            )
        ],
    ),
    Panel(
        "timeseries",
        "Sidecar buffer fill",
        "How full each sidecar's on-disk buffer (spool) of not yet delivered predictions "
        "is. It fills while the monitor is unreachable; once full, new captures are lost.",
        "percentunit",
        [
            (
                "sidewatch_sidecar_spool_bytes / sidewatch_sidecar_spool_capacity_bytes",
                "{{instance}}",
            )
        ],
    ),
    Panel(
        "timeseries",
        "Deliveries to the monitor",
        "Failed deliveries from the sidecar to the monitor (each retried), predictions "
        "sent again after a delivery went unconfirmed (the monitor stores them once), and "
        "events put in quarantine by reason (kept on disk; `sidewatch quarantine replay` "
        "sends them again once the cause is fixed).",
        "cps",
        [
            (
                "sum by (instance) (rate(sidewatch_sidecar_ship_failures_total[$__rate_interval]))",
                "failed deliveries {{instance}}",
            ),
            (
                "sum by (instance) (rate(sidewatch_sidecar_redelivered_events_total"
                "[$__rate_interval]))",
                "redelivered {{instance}}",
            ),
            (
                "sum by (instance, reason) (rate(sidewatch_sidecar_quarantined_events_total"
                "[$__rate_interval]))",
                "quarantined {{reason}} {{instance}}",
            ),
        ],
    ),
    Panel(
        "timeseries",
        "Events ingested",
        "Events and labels received by the monitor, stored or duplicate (a redelivery).",
        "reqps",
        [
            (
                "sum by (kind, outcome) (rate(sidewatch_ingested_events_total[$__rate_interval]))",
                "{{kind}} {{outcome}}",
            )
        ],
    ),
    Panel(
        "timeseries",
        "Requests refused",
        "Ingest and admin requests the monitor refused.",
        "reqps",
        [
            (
                "sum by (reason) (rate(sidewatch_ingest_rejected_requests_total"
                "[$__rate_interval]))",
                "{{reason}}",
            )
        ],
    ),
    Panel(
        "stat",
        "Monitor up",
        "Whether Prometheus can reach the monitor. Down: sidecars keep predictions in "
        "their buffers until it is back.",
        "none",
        [('up{job="sidewatch-monitor"}', "{{instance}}")],
        UP,
    ),
    Panel(
        "timeseries",
        "Time since the last scoring pass",
        "Grows when scoring is stuck.",
        "s",
        [("time() - sidewatch_scoring_last_success_timestamp_seconds", "{{instance}}")],
    ),
    Panel(
        "timeseries",
        "Background backlog",
        "Work each background job left waiting after its last run (scoring: windows to "
        "score). Growing: the job cannot keep up within its time budget.",
        "none",
        [("sum by (job) (sidewatch_background_backlog)", "{{job}}")],
    ),
    Panel(
        "timeseries",
        "GPU busy",
        "Share of time a kernel ran on each GPU.",
        "percentunit",
        [("sidewatch_gpu_utilization_ratio", "gpu {{gpu}}")],
    ),
    Panel(
        "timeseries",
        "GPU real work",
        "Tensor-core and DRAM activity (Hopper GPM): what the busy flag hides.",
        "percentunit",
        [
            ("sidewatch_gpu_tensor_active_ratio", "tensor {{gpu}}"),
            ("sidewatch_gpu_dram_active_ratio", "dram {{gpu}}"),
        ],
    ),
    Panel(
        "timeseries",
        "GPU memory in use",
        "Memory in use on each GPU, by all its processes.",
        "bytes",
        [("sidewatch_gpu_memory_used_bytes", "gpu {{gpu}}")],
    ),
    Panel(
        "timeseries",
        "GPU power",
        "Power each GPU draws, in watts.",
        "watt",
        [("sidewatch_gpu_power_watts", "gpu {{gpu}}")],
    ),
]

DASHBOARDS = {
    "overview.json": dashboard(
        "sidewatch-overview",
        "Sidewatch: is the model right?",
        "For business owners: accuracy, usage and cost per model.",
        OVERVIEW,
    ),
    "model.json": dashboard(
        "sidewatch-model",
        "Sidewatch: model deep dive",
        "For data scientists: drift per input and over time, correlation and multivariate "
        "drift, data quality, the outputs, accuracy in detail and by segment; links to "
        "the report.",
        MODEL,
        report_links=True,
    ),
    "operations.json": dashboard(
        "sidewatch-operations",
        "Sidewatch: operations",
        "For on-call: sidecars, ingest, scoring and accelerators.",
        OPERATIONS,
    ),
}


def render(board: dict[str, Any]) -> str:
    return json.dumps(board, indent=2, sort_keys=True) + "\n"


def main() -> None:
    for name, board in DASHBOARDS.items():
        (HERE / name).write_text(render(board))


if __name__ == "__main__":
    main()
