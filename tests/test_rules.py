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
RULE_FILES = sorted(ALERTS.glob("*.yml"))
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
    known = set(names.ALL)
    try:
        from collectors.accelerators import names as accelerator_names
    except ImportError:
        return known
    return known | set(accelerator_names.ALL)


def test_rules_use_only_defined_metric_names() -> None:
    known = known_metric_names()
    for path in RULE_FILES:
        groups = yaml.safe_load(path.read_text())["groups"]
        recorded = {r["record"] for g in groups for r in g["rules"] if "record" in r}
        for group in groups:
            for rule in group["rules"]:
                used = set(
                    re.findall(
                        r"\b(sidewatch_[a-z0-9_]+|[a-z_]+:sidewatch_[a-z0-9_:]+)", rule["expr"]
                    )
                )
                for name in used:
                    assert name in known or name in recorded, f"{path.name}: unknown {name}"
