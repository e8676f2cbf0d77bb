"""The public surface is what we meant it to be."""

from __future__ import annotations

import collectors
import monitor.api
import monitor.errors
import monitor.report
import monitor.store


def test_collectors_public_names() -> None:
    assert set(collectors.__all__) == {
        "SCHEMA_VERSION",
        "Client",
        "ClientSettings",
        "ClientStats",
        "ConfigError",
        "FeatureSpec",
        "LabelBatch",
        "LabelEvent",
        "MissingDependencyError",
        "ModelDescription",
        "Outputs",
        "PredictionBatch",
        "PredictionEvent",
        "SidewatchError",
    }
    for name in set(collectors.__all__) - {"SCHEMA_VERSION"}:
        assert getattr(collectors, name).__module__.startswith("collectors.")


def test_monitor_public_names() -> None:
    assert monitor.api.__all__ == ["create_app"]
    assert set(monitor.store.__all__) == {"ReferenceInfo", "Store"}
    assert set(monitor.report.__all__) == {"DriftReport", "build_report"}


def test_one_exception_tree() -> None:
    for name in monitor.errors.__all__:
        assert issubclass(getattr(monitor.errors, name), collectors.SidewatchError)
