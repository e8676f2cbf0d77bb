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
