"""docker-compose.yml cannot run here (no Docker engine): check what can be checked."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from monitor.settings import MonitorSettings

ROOT = Path(__file__).resolve().parent.parent


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_build_from_files_that_exist() -> None:
    services = compose()["services"]
    assert {"postgres", "monitor", "model"} <= set(services)
    for name in ("monitor", "model"):
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
