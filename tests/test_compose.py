"""docker-compose.yml cannot run here (no Docker engine): check what can be checked."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from monitor.settings import MonitorSettings

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = ROOT / "tests" / "data" / "compose_spec.json"
SCHEMA_SHA256 = "46b7d35f19dd93a05f8fea530291bf84d881c1791ec167ecf0e6fb94e639d496"


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def schema_errors(document: dict) -> list[str]:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(top)'}: {e.message}"
        for e in validator.iter_errors(document)
    ]


def test_the_vendored_schema_is_the_one_the_readme_names() -> None:
    assert hashlib.sha256(SCHEMA.read_bytes()).hexdigest() == SCHEMA_SHA256
    assert SCHEMA_SHA256 in (SCHEMA.parent / "README.md").read_text()
    schema = json.loads(SCHEMA.read_text())
    assert schema["title"] == "Compose Specification"
    jsonschema.Draft7Validator.check_schema(schema)


def test_the_compose_file_follows_the_compose_specification() -> None:
    assert schema_errors(compose()) == []


@pytest.mark.parametrize(
    "breakage",
    [
        lambda c: c["services"]["monitor"].update(port=["8700:8700"]),  # "ports" misspelt
        lambda c: c["services"]["sidecar"].update(depends_on={"model": {}}),  # no condition
        lambda c: c["services"]["prometheus"].update(volumes="./deploy"),  # not a list
        lambda c: c.update(service={}),  # unknown top-level key
    ],
)
def test_the_schema_catches_mistakes(breakage) -> None:
    broken = copy.deepcopy(compose())
    breakage(broken)
    assert schema_errors(broken) != []


def test_the_sidecar_fronts_the_demo_model_and_ships_to_the_monitor() -> None:
    from monitor.cli import build_parser
    from monitor.demo.data import MODEL_NAME, MODEL_VERSION

    services = compose()["services"]
    sidecar = services["sidecar"]
    command = sidecar["command"]
    assert command[:2] == ["sidewatch", "sidecar"]
    args = build_parser().parse_args(command[1:])
    upstream, monitor_url = urlsplit(args.upstream), urlsplit(args.monitor_url)
    assert upstream.hostname == "model"
    model_command = services["model"]["command"]
    assert str(upstream.port) == model_command[model_command.index("--port") + 1]
    assert monitor_url.hostname == "monitor"
    assert str(monitor_url.port) == services["monitor"]["environment"]["SIDEWATCH_PORT"]
    assert (args.model, args.version) == (MODEL_NAME, MODEL_VERSION)
    assert {"8081:8081", "9402:9402"} <= set(sidecar["ports"])
    assert "model" in sidecar["depends_on"]
    assert "9402/readyz" in " ".join(sidecar["healthcheck"]["test"])
    assert "SIDEWATCH_ADMIN_TOKEN" in sidecar["environment"]["SIDEWATCH_TOKEN"]


def test_services_build_from_files_that_exist() -> None:
    services = compose()["services"]
    assert {"postgres", "monitor", "model"} <= set(services)
    for name in ("monitor", "model", "sidecar"):
        assert (ROOT / services[name]["build"] / "Dockerfile").is_file()
    assert importlib.util.find_spec(services["model"]["command"][2]) is not None


def test_the_monitor_settings_in_compose_are_valid() -> None:
    env = compose()["services"]["monitor"]["environment"]
    settings = MonitorSettings(
        host=env["SIDEWATCH_HOST"],
        port=int(env["SIDEWATCH_PORT"]),
        database_url=env["SIDEWATCH_DATABASE_URL"],
        admin_token="x" * 16,
    )
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert env["SIDEWATCH_DATABASE_URL"].split("@")[1].startswith("postgres:")
    assert f"{settings.port}:{settings.port}" in compose()["services"]["monitor"]["ports"]


def test_every_mounted_file_exists() -> None:
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (ROOT / source).exists(), f"{name} mounts a missing {source}"


def test_prometheus_config_agrees_with_the_services() -> None:
    services = compose()["services"]
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    mounted = {v.split(":")[1] for v in services["prometheus"]["volumes"]}
    assert set(prometheus["rule_files"]) <= mounted
    for job in prometheus["scrape_configs"]:
        for target in job["static_configs"][0]["targets"]:
            host, port = target.split(":")
            assert host in services, f"{job['job_name']} scrapes an unknown service {host}"
            published = [p.split(":")[1] for p in services[host].get("ports", [])]
            assert port in published, f"{host} does not listen on {port}"
    [alertmanager] = prometheus["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert alertmanager.split(":")[0] in services


def test_the_dashboards_reach_the_monitor_where_compose_publishes_it() -> None:
    board = json.loads((ROOT / "dashboards" / "model.json").read_text())
    [constant] = [v for v in board["templating"]["list"] if v["name"] == "monitor_url"]
    port = urlsplit(constant["query"]).port
    assert f"{port}:{port}" in compose()["services"]["monitor"]["ports"]


def test_prometheus_scrapes_the_monitor_with_the_scrape_token() -> None:
    """The monitor's /metrics needs a token: Prometheus reads the scrape token from the
    secret compose mounts, and the monitor is given the same variable."""
    services = compose()["services"]
    prometheus = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    [job] = [j for j in prometheus["scrape_configs"] if j["job_name"] == "sidewatch-monitor"]
    auth = job["authorization"]
    assert auth["type"] == "Bearer"
    secret = auth["credentials_file"].removeprefix("/run/secrets/")
    assert secret in services["prometheus"]["secrets"]
    source = compose()["secrets"][secret]["environment"]
    assert source == "SIDEWATCH_SCRAPE_TOKEN"
    assert source in services["monitor"]["environment"]["SIDEWATCH_SCRAPE_TOKEN"]
    assert "SCRAPE" not in str(services["sidecar"]["environment"]), "Prometheus's alone"
