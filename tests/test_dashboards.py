"""The Grafana dashboards follow the conventions (after grafana/dashboard-linter)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from collectors.accelerators import names as accelerator_names
from collectors.sidecar import names as sidecar_names
from monitor.export import names as monitor_names

ROOT = Path(__file__).resolve().parent.parent
BOARDS = sorted((ROOT / "dashboards").glob("*.json"))
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def recorded_names() -> set[str]:
    groups = yaml.safe_load((ROOT / "alerts" / "recording_rules.yml").read_text())["groups"]
    return {r["record"] for g in groups for r in g["rules"]}


def defined_names() -> set[str]:
    """Series names Sidewatch defines (monitor, accelerators, sidecar, recording rules)."""
    sources = (monitor_names.ALL, accelerator_names.ALL, sidecar_names.ALL)
    names = {name for source in sources for name in source} | recorded_names() | {"up"}
    for source in sources:
        for m in source.values():
            if m.type == "histogram":
                names |= {f"{m.name}_bucket", f"{m.name}_count", f"{m.name}_sum"}
    return names


def expressions(board: dict) -> list[str]:
    return [t["expr"] for p in board["panels"] for t in p["targets"]]


def test_there_are_three_audiences() -> None:
    assert {load(p)["uid"] for p in BOARDS} == {
        "sidewatch-overview",
        "sidewatch-model",
        "sidewatch-operations",
    }


def test_the_committed_json_is_what_the_builder_makes() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("build", ROOT / "dashboards" / "build.py")
    assert spec and spec.loader
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    for name, board in build.DASHBOARDS.items():
        assert (ROOT / "dashboards" / name).read_text() == build.render(board), name


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.name)
def test_dashboard_conventions(path: Path) -> None:
    board = load(path)
    assert board["uid"] and board["title"] and "sidewatch" in board["tags"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"model", "model_version"} <= set(variables)
    for v in ("model", "model_version"):
        assert variables[v]["datasource"] == DATASOURCE
    for panel in board["panels"]:
        where = f"{path.name}: {panel.get('title')}"
        assert panel["title"] and len(panel["description"]) > 15, where
        assert panel["datasource"] == DATASOURCE, where
        assert panel["fieldConfig"]["defaults"]["unit"], where
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, where
            for window in re.findall(
                r"\b(?:rate|irate|increase)\([^\[]*\[([^\]]+)\]", target["expr"]
            ):
                assert window == "$__rate_interval", f"{where}: {target['expr']}"


@pytest.mark.parametrize("path", BOARDS, ids=lambda p: p.name)
def test_queries_use_only_defined_metric_names(path: Path) -> None:
    known = defined_names()
    for expr in expressions(load(path)):
        without_strings = re.sub(r'"[^"]*"', '""', expr)
        for name in re.findall(
            r"\b(sidewatch_[a-z0-9_]+|[a-z_]+:sidewatch_[a-z0-9_:]+|up)\b", without_strings
        ):
            assert name in known, f"{path.name}: {name} is not a defined metric"


def test_provisioning_files() -> None:
    datasources = yaml.safe_load(
        (ROOT / "dashboards/provisioning/datasources/prometheus.yml").read_text()
    )
    providers = yaml.safe_load(
        (ROOT / "dashboards/provisioning/dashboards/sidewatch.yml").read_text()
    )
    assert datasources["apiVersion"] == providers["apiVersion"] == 1
    assert datasources["datasources"][0]["type"] == "prometheus"
    assert providers["providers"][0]["type"] == "file"


def test_the_model_dashboard_links_to_the_monitors_report(tmp_path: Path) -> None:
    from monitor.api import create_app
    from monitor.settings import MonitorSettings

    board = load(ROOT / "dashboards" / "model.json")
    app = create_app(MonitorSettings(database_url=f"sqlite:///{tmp_path / 'm.db'}"))
    routes = set(app.openapi()["paths"])
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["monitor_url"]["type"] == "constant"
    assert variables["monitor_url"]["query"].startswith("http")
    urls = [link["url"] for link in board["links"]] + [
        link["url"] for p in board["panels"] for link in p["fieldConfig"]["defaults"]["links"]
    ]
    assert len(urls) == 1 + len(board["panels"])
    for url in urls:
        assert url.startswith("${monitor_url}/"), url
        path = url.removeprefix("${monitor_url}")
        # ${model}, ${__field.labels.model}, ... stand where the route has {name}, {version}
        template = re.sub(r"/models/\$\{[^}]+\}", "/models/{name}", path)
        template = re.sub(r"/versions/\$\{[^}]+\}", "/versions/{version}", template)
        assert template in routes, f"{url} is not a route of the monitor"
        assert "model" in path.split("/versions/")[0] and "model_version" in path


def test_the_sidecar_names_count_as_defined() -> None:
    known = defined_names()
    assert "sidewatch_sidecar_requests_total" in known
    assert "sidewatch_sidecar_upstream_latency_seconds_bucket" in known
    assert "sidewatch_sidecar_made_up_total" not in known


def test_operations_shows_each_part_of_the_sidecar() -> None:
    exprs = " ".join(expressions(load(ROOT / "dashboards" / "operations.json")))
    for shown in (
        "sidewatch_sidecar_requests_total",
        'code="5xx"',
        "histogram_quantile(0.5, sum by (le, model) (rate("
        "sidewatch_sidecar_upstream_latency_seconds_bucket",
        "histogram_quantile(0.99, sum by (le, model) (rate("
        "sidewatch_sidecar_upstream_latency_seconds_bucket",
        "sum by (reason) (rate(sidewatch_sidecar_capture_dropped_total",
        "sidewatch_sidecar_spool_bytes / sidewatch_sidecar_spool_capacity_bytes",
        "sidewatch_sidecar_ship_failures_total",
        "sidewatch_sidecar_redelivered_events_total",
        'up{job="sidecar"}',
    ):
        assert shown in exprs, shown
    jobs = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())["scrape_configs"]
    assert "sidecar" in {j["job_name"] for j in jobs}, "the job the dashboard reads"


def test_status_panels_show_words() -> None:
    overview = load(ROOT / "dashboards" / "overview.json")
    [status] = [p for p in overview["panels"] if p["title"] == "Model status"]
    [target] = status["targets"]
    assert "model_version:sidewatch_status:max" in target["expr"]
    assert target["expr"].startswith("max by (model) ("), "one word per model, the worst"
    [mapping] = status["fieldConfig"]["defaults"]["mappings"]
    words = {code: m["text"] for code, m in mapping["options"].items()}
    assert words == {"0": "healthy", "1": "drifting", "2": "degraded"}
    with_words = [
        p for b in BOARDS for p in load(b)["panels"] if p["fieldConfig"]["defaults"].get("mappings")
    ]
    assert len(with_words) == 3  # the status, and whether the sidecar and the monitor are up
    for p in with_words:
        assert p["type"] == "stat" and p["options"]["colorMode"] == "background", p["title"]
        for m in p["fieldConfig"]["defaults"]["mappings"]:
            assert m["type"] == "value"
            assert all(o["text"] and o["color"] for o in m["options"].values()), p["title"]
