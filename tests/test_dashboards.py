"""The Grafana dashboards follow the conventions (after grafana/dashboard-linter)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from collectors.accelerators import names as accelerator_names
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
    names = set(monitor_names.ALL) | set(accelerator_names.ALL) | recorded_names() | {"up"}
    for m in monitor_names.ALL.values():
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
