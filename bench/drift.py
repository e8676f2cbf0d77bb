"""Drift at scale: 1,000,000 current rows x 50 numeric features against a reference of
the same size, from stored profiles, against Evidently and a plain scipy loop.

1. Data, generated feature by feature (seeded): normal, lognormal, uniform, integer
   and bimodal features; 10 of the 50 shifted by 0.3 of their spread (they should
   drift), 5 by 0.01 (they should not), the rest unchanged.
2. Profile build (timed): the reference's bins and profile, and the window's profile
   built in 10 chunks of 100,000 rows merged, as ingest batches or parallel workers
   would; rows x features per second. Both are stored (SQLite, as the monitor keeps
   them: the reference profile as JSON, one window profile row per feature).
3. The drift run (timed, in a fresh subprocess so that its peak memory is its own):
   read the reference profile and the window's profiles from the store and score
   every feature with the scoring loop's own code (:meth:`WindowScorer.drift`: the
   test Evidently would choose, here normalised Wasserstein, BH over p-value tests,
   the dataset verdict), including the exact computation from raw values of any
   feature whose profile cannot settle its verdict and value to 1e-3 (here the raw
   values are generated again from their seeds, which costs less than the service's
   read of stored rows; the run says how many features needed it). Peak memory is
   the subprocess's peak resident set (the interpreter and its imports included).
4. Evidently 0.7's DataDriftPreset on the first 50,000 and the first 25,000 rows of
   both (it took 430 s and 3.9 GB on the full size on this machine), each in its own
   subprocess; its time at 1,000,000 rows is extrapolated on the line through the two
   (fixed cost plus cost per row; its sorts grow a little faster than linearly, so
   this is, if anything, low).
5. Baseline: a plain loop of ``scipy.stats.ks_2samp`` over the 50 features on the
   first 100,000 rows of both, time scaled up by 10.

Last line: ``end_to_end_speedup=E per_window_speedup=W sidewatch_end_to_end_s=T
sidewatch_build_s=B sidewatch_s=X sidewatch_peak_mb=Y evidently_s=Z``, where
``evidently_s`` is the extrapolated Evidently time (from raw rows);
``end_to_end_speedup = evidently_s / (B + X)`` compares like with like: Sidewatch's
profile build of the same rows (reference and window, step 2) plus its drift run;
``per_window_speedup = evidently_s / X`` counts only the drift run from profiles
already built (what each scoring of a window costs once ingest has kept them).
Targets: the drift run <= 3 s and <= 1 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROWS = 1_000_000
FEATURES = 50
CHUNK = 100_000
EVIDENTLY_ROWS = 50_000
SCIPY_ROWS = 100_000
SHIFTED = range(0, 10)
"""Features shifted by 0.3 of their spread: they should drift."""
NUDGED = range(10, 15)
"""Features shifted by 0.01 of their spread: they should not."""
MODEL, VERSION, WINDOW = "bench", "1", 300


def column(feature: int, rows: int, current: bool) -> np.ndarray:
    """One feature's values; the same seed gives the same column."""
    rng = np.random.default_rng([feature, int(current)])
    kind = feature % 5
    if kind == 0:
        values, spread = rng.normal(10, 2, rows), 2.0
    elif kind == 1:
        values, spread = rng.lognormal(0, 0.8, rows), 1.2
    elif kind == 2:
        values, spread = rng.uniform(-5, 5, rows), 2.9
    elif kind == 3:
        values, spread = rng.integers(0, 100, rows).astype(float), 29.0
    else:
        values = np.where(rng.random(rows) < 0.4, rng.normal(-2, 0.5, rows), rng.normal(3, 1, rows))
        spread = 2.6
    if current and feature in SHIFTED:
        values = values + 0.3 * spread
    elif current and feature in NUDGED:
        values = values + 0.01 * spread
    return values


def names() -> list[str]:
    return [f"f{i:02d}" for i in range(FEATURES)]


def rss_mb() -> float:
    """This process's peak resident set in MB: ``VmHWM``, which starts afresh at exec
    (``ru_maxrss`` would carry over the parent's peak from before the fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build(db: Path, rows: int) -> dict[str, float]:
    """Steps 1 and 2: profile both samples and store the profiles."""
    from monitor.core.profile import FeatureProfile, ReferenceFeature, ReferenceProfile, fit_bins
    from monitor.store import Store

    store = Store(f"sqlite:///{db}")
    store.migrate()
    from collectors.contract import ModelDescription

    store.put_model(
        ModelDescription.model_validate(
            {
                "name": MODEL,
                "task": "regression",
                "features": [{"name": n, "type": "numeric"} for n in names()],
            }
        )
    )
    build_seconds = 0.0
    features: dict[str, ReferenceFeature] = {}
    window: dict[str, FeatureProfile] = {}
    for i, name in enumerate(names()):
        reference, current = column(i, rows, False), column(i, rows, True)
        started = time.perf_counter()
        bins = fit_bins(reference, "numeric")
        ref_profile = FeatureProfile.of(reference, "numeric", bins)
        distinct = int(bins.edges.size) if bins.discrete else 1001
        features[name] = ReferenceFeature(bins, ref_profile, distinct)
        merged = FeatureProfile.zero(bins)
        for start in range(0, rows, CHUNK):
            merged = merged.merge(
                FeatureProfile.of(current[start : start + CHUNK], "numeric", bins)
            )
        window[name] = merged
        build_seconds += time.perf_counter() - started
    reference_profile = ReferenceProfile(rows, features)
    info = store.add_reference(
        MODEL,
        VERSION,
        rows=rows,
        source_format="parquet",
        data=b"",
        profile=reference_profile.as_json(),
    )
    store.save_window_profiles(MODEL, VERSION, WINDOW, 0.0, info.revision, window)
    store.close()
    return {"build_s": build_seconds, "rows_x_features": 2 * rows * FEATURES}


def drift_run(db: Path, rows: int) -> None:
    """Step 3, in its own process: prints one JSON line."""
    started = time.perf_counter()
    from monitor.core.profile import ReferenceProfile
    from monitor.score.exact import RawValues
    from monitor.score.scorer import WindowScorer
    from monitor.store import Store

    imported = time.perf_counter() - started
    store = Store(f"sqlite:///{db}")
    scorer = WindowScorer(store, window_seconds=WINDOW, min_window_events=30)
    started = time.perf_counter()
    reference = store.latest_reference(MODEL, VERSION)
    assert reference is not None
    profile = ReferenceProfile.from_json(reference.profile)
    window = {
        name: p for name, (_, p) in store.window_profiles(MODEL, VERSION, WINDOW, 0.0).items()
    }
    exact: list[str] = []

    def raw(current: bool) -> Any:
        def values(wanted: Sequence[str]) -> dict[str, np.ndarray]:
            if current:
                exact.extend(wanted)
            return {n: column(names().index(n), rows, current) for n in wanted}

        return values

    began = time.perf_counter()
    scorer.drift(profile, window)  # profiles alone, for comparison: bounds, not verdicts
    profiles_only = time.perf_counter() - began
    started += profiles_only
    results = scorer.drift(profile, window, RawValues(raw(False), raw(True)))
    seconds = time.perf_counter() - started
    store.close()
    print(
        json.dumps(
            {
                "drift_s": seconds,
                "import_s": imported,
                "peak_mb": rss_mb(),
                "drifted": sorted(d.feature for d in results if d.drifted),
                "tests": sorted({d.test for d in results}),
                "values": {d.feature: d.value for d in results},
                "bounds": {d.feature: d.error_bound for d in results},
                "exact": sorted(exact),
                "profiles_only_s": profiles_only,
            }
        )
    )


def slices(path: Path, rows: int, full: int) -> None:
    """The first ``rows`` rows of every column of both samples, saved for the children."""
    arrays = {}
    for i, name in enumerate(names()):
        arrays[f"ref_{name}"] = column(i, full, False)[:rows]
        arrays[f"cur_{name}"] = column(i, full, True)[:rows]
    np.savez(path, **arrays)


def evidently_run(path: Path) -> None:
    """Step 4, in its own process: prints one JSON line."""
    os.environ.setdefault("DO_NOT_TRACK", "1")
    import pandas as pd

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from evidently import DataDefinition, Dataset, Report
        from evidently.presets import DataDriftPreset

    data = np.load(path)
    reference = pd.DataFrame({n: data[f"ref_{n}"] for n in names()})
    current = pd.DataFrame({n: data[f"cur_{n}"] for n in names()})
    before = rss_mb()
    definition = DataDefinition(numerical_columns=names())
    started = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snapshot = Report([DataDriftPreset()]).run(
            Dataset.from_pandas(current, data_definition=definition),
            Dataset.from_pandas(reference, data_definition=definition),
        )
        result = snapshot.dict()
    seconds = time.perf_counter() - started
    drifted = []
    values = {}
    for metric in result["metrics"]:
        config = metric.get("config", {})
        column_name = config.get("column")
        if column_name in names() and isinstance(metric.get("value"), int | float):
            values[column_name] = float(metric["value"])
            threshold = config.get("threshold", 0.1)
            if metric["value"] >= threshold:
                drifted.append(column_name)
    print(
        json.dumps(
            {
                "evidently_s": seconds,
                "peak_mb": rss_mb(),
                "data_mb": before,
                "drifted": sorted(drifted),
                "values": values,
            }
        )
    )


def child(*args: str) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, *args],
        check=True,
        capture_output=True,
        text=True,
        env=os.environ | {"PYTHONWARNINGS": "ignore"},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def slice_drift(path: Path) -> dict[str, tuple[float, float]]:
    """Our Wasserstein from profiles of the slice Evidently sees: (value, error bound)."""
    from monitor.core.profile import FeatureProfile, ReferenceProfile
    from monitor.score.drift import DRIFT_TESTS

    data = np.load(path)
    out = {}
    for name in names():
        reference, current = data[f"ref_{name}"], data[f"cur_{name}"]
        ref = ReferenceProfile.build({name: ("numeric", reference)}, reference.size)
        feature = ref.features[name]
        window = FeatureProfile.of(current, "numeric", feature.bins)
        score = DRIFT_TESTS["wasserstein"].score(feature, window, 0.1)
        out[name] = (score.statistic, score.error_bound)
    return out


def scipy_loop(path: Path) -> float:
    from scipy import stats

    data = np.load(path)
    seconds = 0.0
    for name in names():
        reference, current = data[f"ref_{name}"], data[f"cur_{name}"]
        started = time.perf_counter()
        stats.ks_2samp(reference, current)
        seconds += time.perf_counter() - started
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--phase", choices=["all", "drift", "evidently"], default="all")
    parser.add_argument("--db", type=Path)
    parser.add_argument("--rows", type=int, default=ROWS)
    parser.add_argument("--evidently-rows", type=int, default=EVIDENTLY_ROWS)
    parser.add_argument("--scipy-rows", type=int, default=SCIPY_ROWS)
    args = parser.parse_args()
    if args.phase == "drift":
        drift_run(args.db, args.rows)
        return
    if args.phase == "evidently":
        evidently_run(args.db)
        return

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        built = build(db, args.rows)
        rate = built["rows_x_features"] / built["build_s"]
        print(
            f"profiles: {args.rows:,} reference + {args.rows:,} current rows x {FEATURES} "
            f"features in {built['build_s']:.2f} s ({rate / 1e6:.1f} M values/s, "
            f"{2 * args.rows / built['build_s']:,.0f} rows/s of 50 features); "
            f"window built from {args.rows // CHUNK} merged chunks",
            flush=True,
        )
        ours = child("--phase", "drift", "--db", str(db), "--rows", str(args.rows))
        print(
            f"sidewatch drift from stored profiles: {ours['drift_s']:.3f} s for {FEATURES} "
            f"features (tests: {', '.join(ours['tests'])}; imports {ours['import_s']:.1f} s, "
            f"not counted); peak RSS of that process {ours['peak_mb']:.0f} MB; drifted: "
            f"{len(ours['drifted'])} ({', '.join(ours['drifted'])}); largest error bound "
            f"of a profile-based result {max(ours['bounds'].values()):.4f}; computed "
            f"from raw values: {len(ours['exact'])} ({', '.join(ours['exact']) or 'none'}); "
            f"from profiles alone (bounds, not verdicts) it took {ours['profiles_only_s']:.3f} s",
            flush=True,
        )
        expected = sorted(f"f{i:02d}" for i in SHIFTED)
        if ours["drifted"] != expected:
            print(f"WARNING: expected {expected} to drift", flush=True)

        evidently_data, scipy_data = Path(tmp) / "evidently.npz", Path(tmp) / "scipy.npz"
        slices(evidently_data, args.evidently_rows, args.rows)
        slices(scipy_data, args.scipy_rows, args.rows)
        theirs = child("--phase", "evidently", "--db", str(evidently_data))
        # A second, half-size slice separates Evidently's fixed cost from its per-row cost.
        half = args.evidently_rows // 2
        half_data = Path(tmp) / "evidently-half.npz"
        slices(half_data, half, args.rows)
        small = child("--phase", "evidently", "--db", str(half_data))
        ks_s = scipy_loop(scipy_data) * args.rows / args.scipy_rows
        same_data = slice_drift(evidently_data)

    scale = args.rows / args.evidently_rows
    per_row = (theirs["evidently_s"] - small["evidently_s"]) / (args.evidently_rows - half)
    evidently_s = theirs["evidently_s"] + max(per_row, 0.0) * (args.rows - args.evidently_rows)
    print(
        f"evidently DataDriftPreset on a {args.evidently_rows:,}-row slice of both: "
        f"{theirs['evidently_s']:.1f} s, peak RSS {theirs['peak_mb']:.0f} MB (of which "
        f"{theirs['data_mb']:.0f} MB before the run: interpreter, imports, data); "
        f"on {half:,} rows {small['evidently_s']:.1f} s; extrapolated linearly through "
        f"both to {args.rows:,} rows: {evidently_s:.0f} s (x{scale:g} of the larger "
        f"slice alone: {theirs['evidently_s'] * scale:.0f} s); drifted on the slice: "
        f"{len(theirs['drifted'])} ({', '.join(theirs['drifted'])})",
        flush=True,
    )
    drifted = theirs["drifted"]
    gaps = {f: abs(v - theirs["values"][f]) for f, (v, _) in same_data.items()}
    worst = max(gaps, key=gaps.__getitem__)
    print(
        f"agreement on the slice, profiles vs evidently: largest wasserstein gap "
        f"{gaps[worst]:.2e} ({worst}: ours {same_data[worst][0]:.5f}, evidently "
        f"{theirs['values'][worst]:.5f}; stated bound {same_data[worst][1]:.2e}); same "
        f"drifted set: {sorted(f for f, (v, _) in same_data.items() if v >= 0.1) == drifted}",
        flush=True,
    )
    print(
        f"baseline: scipy ks_2samp loop over {FEATURES} features on {args.scipy_rows:,} "
        f"rows, scaled x{args.rows / args.scipy_rows:g}: {ks_s:.1f} s",
        flush=True,
    )
    end_to_end = built["build_s"] + ours["drift_s"]
    print(
        f"end_to_end_speedup={evidently_s / end_to_end:.1f} "
        f"per_window_speedup={evidently_s / ours['drift_s']:.0f} "
        f"sidewatch_end_to_end_s={end_to_end:.2f} sidewatch_build_s={built['build_s']:.2f} "
        f"sidewatch_s={ours['drift_s']:.3f} sidewatch_peak_mb={ours['peak_mb']:.0f} "
        f"evidently_s={evidently_s:.0f}"
    )


if __name__ == "__main__":
    main()
