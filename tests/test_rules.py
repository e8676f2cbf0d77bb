"""Prometheus rules: promtool (Debian's 2.42) checks them and runs their unit tests."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from monitor.export import names

ALERTS = Path(__file__).resolve().parent.parent / "alerts"
RULE_FILES = sorted(p for p in ALERTS.glob("*_rules.yml"))
TEST_FILES = sorted((ALERTS / "tests").glob("*_test.yml"))


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    tool = shutil.which("promtool")
    if tool is None:
        pytest.fail("promtool is missing: `make test` installs Debian's prometheus package")
    return subprocess.run([tool, *args], cwd=ALERTS, capture_output=True, text=True, timeout=120)


def test_there_are_rules_and_tests() -> None:
    assert RULE_FILES and TEST_FILES


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_promtool_checks_the_rules(path: Path) -> None:
    result = promtool("check", "rules", path.name)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path: Path) -> None:
    result = promtool("test", "rules", str(path.relative_to(ALERTS)))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_rule_file_has_a_unit_test() -> None:
    tested = set()
    for path in TEST_FILES:
        for rule_file in yaml.safe_load(path.read_text())["rule_files"]:
            tested.add((path.parent / rule_file).resolve())
    assert {p.resolve() for p in RULE_FILES} <= tested


def known_metric_names() -> set[str]:
    """Metric names Sidewatch defines, as series names (counters with ``_total``)."""
    from collectors.accelerators import names as accelerator_names
    from collectors.sidecar import names as sidecar_names

    return set(names.ALL) | set(accelerator_names.ALL) | set(sidecar_names.ALL)


def test_rules_use_only_defined_metric_names() -> None:
    known = known_metric_names()
    # Prometheus loads every rule file together: an alert may use any file's records.
    files = {path: yaml.safe_load(path.read_text())["groups"] for path in RULE_FILES}
    recorded = {
        r["record"] for gs in files.values() for g in gs for r in g["rules"] if "record" in r
    }
    for path, groups in files.items():
        for group in groups:
            for rule in group["rules"]:
                used = set(
                    re.findall(
                        r"\b(sidewatch_[a-z0-9_]+|[a-z_]+:sidewatch_[a-z0-9_:]+)", rule["expr"]
                    )
                )
                for name in used:
                    # A histogram's series: its _bucket, _sum and _count.
                    base = re.sub(r"_(bucket|sum|count)$", "", name)
                    assert name in known or base in known or name in recorded, (
                        f"{path.name}: unknown {name}"
                    )


def alert_rules() -> list[dict]:
    rules = yaml.safe_load((ALERTS / "alerting_rules.yml").read_text())["groups"]
    return [r for g in rules for r in g["rules"] if "alert" in r]


def test_alerts_follow_the_conventions() -> None:
    rules = alert_rules()
    assert len(rules) >= 8
    for rule in rules:
        name = rule["alert"]
        assert re.fullmatch(r"Sidewatch([A-Z][a-z0-9]+)+", name), name
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
        assert "{{" not in annotations["summary"], f"{name}: the summary is a fixed sentence"
        assert "$labels" in annotations["description"] or "$value" in annotations["description"]
        runbook = ALERTS.parent / annotations["runbook_url"]
        assert runbook.is_file(), f"{name}: no runbook at {runbook}"
        assert runbook.read_text().startswith(f"# {name}")


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases: dict[str, set[bool]] = {}
    for path in TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                cases.setdefault(case["alertname"], set()).add(bool(case["exp_alerts"]))
    for rule in alert_rules():
        assert cases.get(rule["alert"]) == {True, False}, rule["alert"]


def test_the_alertmanager_example_groups_and_inhibits_as_agreed() -> None:
    config = yaml.safe_load((ALERTS / "alertmanager.yml").read_text())
    assert config["route"]["group_by"] == ["alertname", "model"]
    [inhibit] = config["inhibit_rules"]
    assert inhibit["source_matchers"] == ['severity="critical"']
    assert inhibit["target_matchers"] == ['severity="warning"']
    assert inhibit["equal"] == ["alertname", "model"]
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool is missing: `make test` installs Debian's prometheus-alertmanager")
    checked = subprocess.run(
        [amtool, "check-config", str(ALERTS / "alertmanager.yml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    for severity, receiver in (
        ("critical", "sidewatch-pager"),
        ("warning", "sidewatch-tickets"),
        ("info", "sidewatch-info"),
    ):
        routed = subprocess.run(
            [
                amtool,
                "config",
                "routes",
                "test",
                f"--config.file={ALERTS / 'alertmanager.yml'}",
                f"severity={severity}",
                "alertname=SidewatchX",
                "model=m",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert routed.stdout.strip() == receiver, routed.stdout + routed.stderr
