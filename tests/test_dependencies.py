"""Every library the code imports is declared where its part is installed from.

The base install carries the collectors; ``sidewatch[monitor]`` the monitor. A module
imported at the top of a file must come with that part's install (declared, or
required by what is declared); a library of another extra (evidently, nvidia-ml-py,
...) may only be imported inside a function, where a missing one is reported.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from functools import cache
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OWN = {"monitor", "collectors"}


def imports(package: str) -> tuple[set[str], set[str]]:
    """Third-party top-level modules imported by ``package``: at module level, and
    anywhere (inside functions included)."""
    top: set[str] = set()
    anywhere: set[str] = set()
    for path in (ROOT / package).rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        module_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                root = name.split(".")[0]
                if root in OWN or root in sys.stdlib_module_names or root == "__future__":
                    continue
                anywhere.add(root)
                if id(node) in module_level:
                    top.add(root)
    return top, anywhere


@cache
def closure(name: str, extras: frozenset[str] = frozenset()) -> frozenset[str]:
    """A distribution (with ``extras``) and everything it requires, recursively."""
    found = {canonicalize_name(name)}
    try:
        requires = metadata.requires(name) or []
    except metadata.PackageNotFoundError:  # required only on another platform
        return frozenset(found)
    envs = [{"extra": extra} for extra in sorted(extras)] or [{"extra": ""}]
    for dep in map(Requirement, requires):
        if dep.marker is None or any(dep.marker.evaluate(env) for env in envs):
            found |= closure(dep.name, frozenset(dep.extras))
    return frozenset(found)


def installed_with(*extras: str) -> set[str]:
    """The distributions a base install plus ``extras`` brings."""
    reqs = list(PROJECT["dependencies"])
    for extra in extras:
        reqs += PROJECT["optional-dependencies"][extra]
    return set().union(*(closure(r.name, frozenset(r.extras)) for r in map(Requirement, reqs)))


@cache
def distributions(module: str) -> set[str]:
    """The distributions that install the top-level module ``module``."""
    return {canonicalize_name(d) for d in _packages().get(module, [])}


@cache
def _packages() -> dict[str, list[str]]:
    return dict(metadata.packages_distributions())


def test_the_monitor_extra_brings_what_the_monitor_imports_at_module_level() -> None:
    top, _ = imports("monitor")
    brought = installed_with("monitor")
    missing = {m for m in top if not distributions(m) & brought}
    assert not missing, f"imported at module level but not in sidewatch[monitor]: {missing}"


def test_the_base_install_brings_what_the_collectors_import_at_module_level() -> None:
    top, _ = imports("collectors")
    brought = installed_with()
    missing = {m for m in top if not distributions(m) & brought}
    assert not missing, f"imported at module level but not in the base install: {missing}"


def test_every_imported_library_is_declared_in_some_extra() -> None:
    brought = installed_with(*PROJECT["optional-dependencies"])
    for package in OWN:
        _, anywhere = imports(package)
        missing = {m for m in anywhere if not distributions(m) & brought}
        assert not missing, f"{package} imports libraries no extra declares: {missing}"


def test_scoring_libraries_come_with_the_monitor() -> None:
    # scipy computes every drift test's p-value; scikit-learn the domain classifier.
    assert {"scipy", "scikit-learn"} <= installed_with("monitor")
