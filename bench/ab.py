"""A/B of benchmarks against an earlier commit, in the same run: is this tree slower?

Checks out ``--ref`` (default: main before the seam's redesign, issue 12) into a
temporary git worktree and runs each named benchmark alternately from that tree (arm
``before``) and from this one (arm ``after``), ``--runs`` times each, with the same
interpreter and arguments. Each arm imports its own tree's code (``PYTHONPATH`` is set
to the tree's root, which comes before the editable install on ``sys.path``; each run
prints which ``monitor`` package it imported). Alternating spreads the shared machine's
noise over both arms.

The benchmarks and the figures compared (higher is better for rates, lower for times):

- ``ingest`` (``bench/ingest.py``, one run of each of its arms per call):
  ``events_per_s`` and ``monitor_cpu_us`` (the monitor's CPU per event, steadier than
  the rate on a shared machine).
- ``drift`` (``bench/drift.py`` with small Evidently and scipy slices, which are not
  compared): ``sidewatch_s`` (the drift run from stored profiles) and
  ``sidewatch_build_s`` (the profile build).

Last line: per figure, the medians of both arms and ``<figure>_ratio`` = after / before
(so a rate's ratio below 1, or a time's above 1, is a slowdown), e.g. ``ingest_events_per_s
_ratio=0.98 drift_sidewatch_s_ratio=1.01``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SEAM_BASE = "06af4d7"
"""Main before the seam's redesign: the hardening merged and the golden windows
recorded, no part of issue 12 moved yet."""

BENCHES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "ingest": (
        ["bench/ingest.py", "--runs", "1", "--events", "100000"],
        ("events_per_s", "monitor_cpu_us"),
    ),
    "drift": (
        ["bench/drift.py", "--evidently-rows", "4000", "--scipy-rows", "10000"],
        ("sidewatch_s", "sidewatch_build_s"),
    ),
}


def last_line_figures(output: str) -> dict[str, float]:
    """The ``key=value`` pairs of a benchmark's last line."""
    lines = [line for line in output.splitlines() if line.strip()]
    if not lines:
        raise RuntimeError("the benchmark printed nothing")
    figures = {}
    for pair in lines[-1].split():
        key, sep, value = pair.partition("=")
        if sep:
            try:
                figures[key] = float(value)
            except ValueError:
                continue
    return figures


def run_bench(tree: Path, bench: str) -> dict[str, float]:
    """One run of ``bench`` with ``tree``'s code; its last line's figures."""
    args, _ = BENCHES[bench]
    env = os.environ | {"PYTHONPATH": str(tree)}
    imported = subprocess.run(
        [sys.executable, "-c", "import monitor; print(monitor.__file__)"],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not imported.startswith(str(tree)):
        raise RuntimeError(f"{tree} imported monitor from {imported}")
    done = subprocess.run(
        [sys.executable, *args], env=env, cwd=tree, capture_output=True, text=True
    )
    if done.returncode:
        raise RuntimeError(f"{bench} in {tree} failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return last_line_figures(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("benches", nargs="+", choices=sorted(BENCHES))
    parser.add_argument("--ref", default=SEAM_BASE, help="the commit of arm 'before'")
    parser.add_argument("--runs", type=int, default=3, help="runs of each arm, alternating")
    args = parser.parse_args()

    summary: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(before), args.ref],
            check=True,
        )
        try:
            for bench in args.benches:
                keys = BENCHES[bench][1]
                runs: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
                for k in range(args.runs):
                    for arm, tree in (("before", before), ("after", ROOT)):
                        figures = run_bench(tree, bench)
                        runs[arm].append(figures)
                        shown = " ".join(f"{key}={figures.get(key)}" for key in keys)
                        print(f"{bench} run {k + 1} {arm}: {shown}", flush=True)
                for key in keys:
                    medians = {arm: statistics.median(r[key] for r in runs[arm]) for arm in runs}
                    ratio = medians["after"] / medians["before"]
                    print(
                        f"{bench} {key}: before {medians['before']:g}, after "
                        f"{medians['after']:g}, after/before {ratio:.3f}",
                        flush=True,
                    )
                    summary.append(f"{bench}_{key}_ratio={ratio:.3f}")
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(before)], check=False
            )
    print(" ".join(summary))


if __name__ == "__main__":
    main()
