"""The sidecar side stays light: importing it loads none of the heavy libraries."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("pandas", "scipy", "shap", "evidently", "numpy", "sqlalchemy", "fastapi", "monitor")


def loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return {name.split(".")[0] for name in out.stdout.split()}


def test_collectors_import_nothing_heavy() -> None:
    loaded = loaded_after(
        "import collectors, collectors.sdk, collectors.transport, collectors.spool, "
        "collectors.forward, collectors.accelerators, collectors.sidecar, "
        "collectors.sidecar.proxy, collectors.sidecar.tap, collectors.sidecar.admin"
    )
    assert loaded.isdisjoint(HEAVY), loaded & set(HEAVY)


def test_the_cli_loads_the_monitor_only_when_asked() -> None:
    loaded = loaded_after("import monitor.cli; monitor.cli.build_parser()")
    assert loaded.isdisjoint({"pandas", "scipy", "sqlalchemy", "fastapi", "numpy"})
