"""Builds the Grafana dashboards (classic JSON) from the panel lists below.

Run ``python dashboards/build.py`` after changing a panel; the JSON files it writes are
committed, and a test fails if they differ from what this script makes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
SEL = 'model=~"$model", model_version=~"$model_version"'
MONITOR_URL = "http://localhost:8700"
"""Where browsers reach the monitor (docker-compose.yml publishes it on 8700): the
``monitor_url`` constant of the model dashboard, used by its links to the report."""
REPORT_PATH = "/v1/models/{model}/versions/{version}/report"

Panel = tuple[str, str, str, str, list[tuple[str, str]]]
"""(type, title, description, unit, [(PromQL, legend)])."""


def panel(i: int, spec: Panel) -> dict[str, Any]:
    kind, title, description, unit, targets = spec
    return {
        "id": i + 1,
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"h": 8, "w": 12, "x": (i % 2) * 12, "y": (i // 2) * 8},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {},
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
    (
        "stat",
        "Inputs drifting now",
        "How many of the model's inputs look different from "
        "the data it was trained on. 0 is healthy.",
        "none",
        [(f"sum by (model) (sidewatch_feature_drifted{{{SEL}}})", "{{model}}")],
    ),
    (
        "timeseries",
        "Share of predictions that were right",
        "Accuracy, from the true "
        "outcomes received so far. Recent windows fill in as outcomes arrive.",
        "percentunit",
        [(f"sidewatch_window_accuracy_ratio{{{SEL}}}", "{{model}} {{model_version}}")],
    ),
    (
        "timeseries",
        "Share of predictions with a known outcome",
        "Label coverage: below about 30% the accuracy above is not yet reliable.",
        "percentunit",
        [(f"sidewatch_window_label_coverage_ratio{{{SEL}}}", "{{model}} {{model_version}}")],
    ),
    (
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
    (
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
    (
        "timeseries",
        "Drift per input",
        "The drift statistic of each input against the "
        "reference, per scored window (PSI: 0.1 watch, 0.2 act).",
        "none",
        [(f"sidewatch_feature_drift_score{{{SEL}}}", "{{feature}} ({{test}})")],
    ),
    (
        "state-timeline",
        "Drift over time",
        "Which inputs were drifted (1) in each window.",
        "none",
        [(f"sidewatch_feature_drifted{{{SEL}}}", "{{feature}}")],
    ),
    (
        "timeseries",
        "Drift thresholds",
        "The value of each test at which an input counts as drifted.",
        "none",
        [(f"sidewatch_feature_drift_threshold{{{SEL}}}", "{{feature}} ({{test}})")],
    ),
    (
        "timeseries",
        "Predictions per window",
        "Events in the newest closed window.",
        "none",
        [(f"sidewatch_window_predictions{{{SEL}}}", "{{model_version}}")],
    ),
    (
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
    (
        "stat",
        "Inputs left out of the metrics",
        "Inputs beyond the per-version series cap: see the API for all.",
        "none",
        [(f"sidewatch_feature_series_cut{{{SEL}}}", "")],
    ),
]

OPERATIONS: list[Panel] = [
    (
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
    (
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
    (
        "stat",
        "Monitor up",
        "1 when Prometheus can scrape the monitor.",
        "none",
        [('up{job="sidewatch-monitor"}', "{{instance}}")],
    ),
    (
        "timeseries",
        "Time since the last scoring pass",
        "Grows when scoring is stuck.",
        "s",
        [("time() - sidewatch_scoring_last_success_timestamp_seconds", "{{instance}}")],
    ),
    (
        "timeseries",
        "GPU busy",
        "Share of time a kernel ran on each GPU.",
        "percentunit",
        [("sidewatch_gpu_utilization_ratio", "gpu {{gpu}}")],
    ),
    (
        "timeseries",
        "GPU real work",
        "Tensor-core and DRAM activity (Hopper GPM): what the busy flag hides.",
        "percentunit",
        [
            ("sidewatch_gpu_tensor_active_ratio", "tensor {{gpu}}"),
            ("sidewatch_gpu_dram_active_ratio", "dram {{gpu}}"),
        ],
    ),
    (
        "timeseries",
        "GPU memory in use",
        "Memory in use on each GPU, by all its processes.",
        "bytes",
        [("sidewatch_gpu_memory_used_bytes", "gpu {{gpu}}")],
    ),
    (
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
        "For data scientists: drift per input, windows, latency; links to the report.",
        MODEL,
        report_links=True,
    ),
    "operations.json": dashboard(
        "sidewatch-operations",
        "Sidewatch: operations",
        "For on-call: ingest, scoring and accelerators.",
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
