"""The layers run one way: import-linter's contracts (``[tool.importlinter]`` in
``pyproject.toml``, drawn in ``docs/architecture.md``) hold.

The real tool, run as its command line does, on this checkout's packages; a broken
contract fails with the tool's report, which names each forbidden import and its line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]

_LINT = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"


def test_the_contracts_are_the_ones_meant() -> None:
    # Deleting or renaming a contract is a change to the architecture, not a fix.
    assert {c["id"] for c in CONFIG["contracts"]} == {
        "collectors-standalone",
        "store-below-scoring",
        "loop-wired-by-the-app",
        "monitor-layers",
    }
    assert CONFIG["root_packages"] == ["monitor", "collectors"]


def test_the_import_contracts_hold() -> None:
    # PYTHONPATH first: grimp must read this checkout's packages, never an installed copy.
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    done = subprocess.run(
        [sys.executable, "-c", _LINT, "--no-cache", "--no-logo"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    report = done.stdout + done.stderr
    assert done.returncode == 0, f"import-linter contracts broken:\n{report}"
    assert f"{len(CONFIG['contracts'])} kept, 0 broken" in report, report


def test_the_map_names_files_and_contracts_that_exist() -> None:
    # docs/architecture.md says where each kind of addition goes: keep it true.
    text = (ROOT / "docs" / "architecture.md").read_text()
    paths = set()
    for found in re.findall(r"`([\w./{},*-]+/[\w./{},*-]*)`", text):
        head, brace, rest = found.partition("{")
        if brace:
            names, _, tail = rest.partition("}")
            paths |= {head + name + tail for name in names.split(",")}
        else:
            paths.add(found)
    assert len(paths) > 20, paths
    missing = sorted(p for p in paths if not list(ROOT.glob(p.rstrip("/"))))
    assert not missing, f"docs/architecture.md names paths that do not exist: {missing}"
    for contract in CONFIG["contracts"]:
        assert f"`{contract['id']}`" in text, f"docs/architecture.md lacks {contract['id']}"
