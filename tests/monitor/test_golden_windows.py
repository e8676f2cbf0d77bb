"""Golden windows: everything the service publishes about a fixed set of scored windows,
recorded in ``tests/golden/windows.json``, must come out the same on every later run.

This is the safety net of issue 12 (one seam for every result): the scoring service is
redesigned around a registry of window parts, and every number it publishes must stay
identical. So the recording is taken from the outside only: the JSON of the window
endpoints and the samples of ``/metrics``, never internal classes or tables.

What is covered: binary, multiclass and regression models; windows fully, partly and
not labelled (labels arriving late, after their window closed); models with a full
reference, none, and one without the label and output columns; a window below
``min_window_events``; drift, data quality (missing values, new categories, values out
of range); segments (two values scored, one cut); rollups (a full one and a partial
one); count windows; and a second configuration with per-feature drift tests (psi,
jensenshannon, wasserstein, hellinger) and the domain-classifier multivariate test.

What varies run to run and is left out (see :data:`DROPPED_KEYS`): ``scored_at``, the
wall-clock time of scoring; the counters' ``_created`` samples; ingest's bookkeeping
counters (not window results). The window's row sample is the whole window: the
sample size (``score_sample_rows``) is above every window's size, so the database's
``random()`` never chooses rows (the recorded ``sampled: false`` fields say so). A
window's per-feature ``drift`` list, and the ``/drift`` rows within a window, are
compared sorted by feature: their order is the store's, not a result (SQLite gives the
model's feature order, PostgreSQL's jsonb its own key order).

The SQLite run is the recording; the same scenes on PostgreSQL are checked against it.

Comparison: every key and string identical, every number within 1e-12 relative or 1e-12
absolute (``math.isclose(rel_tol=1e-12, abs_tol=1e-12)``: below 1 in magnitude that is
1e-12 absolute, so a number below 1e-12, a tiny p-value, is only checked to stay below
it), NaN equal to NaN. Booleans are not numbers here: ``true`` is not ``1``. A rename
made on purpose goes in :data:`RENAMED_KEYS` or :data:`RENAMED_METRICS`, not into a new
recording.

Re-record (after a change that is meant to change the published numbers, and only
then)::

    SIDEWATCH_GOLDEN_RECORD=1 PYTHONPATH=$PWD python -m pytest tests/monitor/test_golden_windows.py

Recording runs the scenes twice and refuses to write unless both runs agree exactly.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import numpy as np
import orjson
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from monitor.api import create_app
from monitor.settings import MonitorSettings
from tests.conftest import _drop_pg_database, _new_pg_database

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "windows.json"
RECORD_ENV = "SIDEWATCH_GOLDEN_RECORD"

W = 60
ROLLUP = 180
T0 = 1_700_000_100
"""A multiple of ``W`` and of ``ROLLUP``: base windows 0-2 fill one rollup."""
REL = ABS = 1e-12

DROPPED_KEYS = frozenset({"scored_at"})
"""Window fields that are wall-clock times of this run, not results."""
DROPPED_METRICS = ("sidewatch_ingested_events", "sidewatch_ingest_rejected")
"""Ingest's bookkeeping counters (by outcome and reason): not window results."""

RENAMED_KEYS: dict[str, str] = {}
"""JSON keys renamed on purpose since the recording, old to new (issue 12 renames, e.g.
``{"missing_share": "missing_ratio"}``): the recording is read with them applied, so
its numbers are still checked, against what was published before the change."""
RENAMED_METRICS: dict[str, str] = {}
"""Metric sample names renamed on purpose since the recording, old to new."""

FEATURES = [
    {"name": "income", "type": "numeric"},
    {"name": "age", "type": "numeric"},
    {"name": "region", "type": "categorical"},
    {"name": "has_card", "type": "boolean"},
]
CLASSES = ["a", "b", "c"]
CHANNELS = ["web", "app", "store"]
"""Values of the segment key ``channel``; with at most 2 scored, ``store`` is cut."""


class Clock:
    """The scoring loop's clock, set by the scene."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ----------------------------------------------------------------------------- data


def inputs(rng: np.random.Generator, n: int, shift: float = 1.0) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.5, n) * shift,
            "age": rng.integers(18, 80, n).astype(float),
            "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.3, 0.2]),
            "has_card": rng.random(n) < 0.4,
        }
    )


def degrade(rng: np.random.Generator, frame: pd.DataFrame) -> pd.DataFrame:
    """Missing values, a new category and ages out of the reference's range."""
    frame = frame.copy()
    n = len(frame)
    frame.loc[rng.random(n) < 0.1, "income"] = None
    frame.loc[rng.random(n) < 0.1, "age"] = 5.0
    new = rng.random(n) < 0.1
    frame.loc[new, "region"] = "west"
    frame.loc[rng.random(n) < 0.05, "region"] = None
    return frame


def plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def binary_outputs(rng: np.random.Generator, n: int, a: float = 2, b: float = 3) -> np.ndarray:
    return np.round(np.clip(rng.beta(a, b, n), 0.01, 0.99), 2)


def binary_reference(rng: np.random.Generator, n: int, *, labels: bool = True) -> pd.DataFrame:
    frame = inputs(rng, n)
    if labels:
        score = binary_outputs(rng, n)
        frame["prediction"] = (score >= 0.5).astype(int)
        frame["score"] = score
        frame["target"] = (rng.random(n) < score).astype(int)
    return frame


def multiclass_reference(rng: np.random.Generator, n: int) -> pd.DataFrame:
    proba = rng.dirichlet([2, 2, 2], n)
    frame = inputs(rng, n)
    frame["prediction"] = np.array(CLASSES)[proba.argmax(axis=1)]
    frame["score"] = proba.max(axis=1)
    for j, c in enumerate(CLASSES):
        frame[f"score_{c}"] = proba[:, j]
    frame["target"] = [rng.choice(CLASSES, p=p) for p in proba]
    return frame


def regression_reference(rng: np.random.Generator, n: int) -> pd.DataFrame:
    frame = inputs(rng, n)
    frame["prediction"] = np.round(rng.normal(100, 10, n), 1)
    frame["target"] = frame["prediction"] + rng.normal(0, 5, n)
    return frame


def model_body(name: str, task: str) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "task": task, "features": FEATURES}
    if task == "binary":
        body["positive_class"] = 1
    return body


# ---------------------------------------------------------------------------- scenes


class Scene:
    """One monitor app on a fresh SQLite file, driven by an injected clock."""

    def __init__(self, client: TestClient, clock: Clock) -> None:
        self.client = client
        self.clock = clock
        self.metrics: dict[str, dict[str, float]] = {}
        self.truth: dict[str, dict[str, Any]] = {}
        """Per model: event id to its label (posted later)."""

    def register(self, name: str, task: str, reference: pd.DataFrame | None) -> None:
        response = self.client.put(f"/v1/models/{name}", json=model_body(name, task))
        assert response.status_code == 201, response.text
        if reference is not None:
            buffer = io.BytesIO()
            reference.to_parquet(buffer, index=False)
            response = self.client.put(
                f"/v1/models/{name}/versions/v1/reference?format=parquet",
                content=buffer.getvalue(),
            )
            assert response.status_code == 201, response.text

    def post(
        self,
        model: str,
        window: int,
        frame: pd.DataFrame,
        outputs: list[dict[str, Any]],
        *,
        rng: np.random.Generator,
        latency: bool = True,
    ) -> list[str]:
        start = T0 + window * W
        n = len(frame)
        channels = rng.choice(CHANNELS, n, p=[0.5, 0.3, 0.2])
        events = []
        for i, row in enumerate(frame.to_dict("records")):
            event: dict[str, Any] = {
                "event_id": f"{model}-w{window}-{i:04d}",
                "model": model,
                "model_version": "v1",
                "timestamp": start + i * (W - 1) / n,
                "features": {k: plain(v) for k, v in row.items()},
                "outputs": outputs[i],
                "segment": {"channel": str(channels[i])},
            }
            if latency:
                event["latency_seconds"] = 0.001 * (1 + i % 17)
            events.append(event)
        response = self.client.post(
            "/v1/ingest/predictions", content=orjson.dumps({"events": events})
        )
        assert response.status_code == 200, response.text
        assert response.json()["stored"] == n, response.text
        return [e["event_id"] for e in events]

    def label(self, model: str, ids: list[str], values: list[Any]) -> None:
        labels = [
            {
                "event_id": f"label-{event_id}",
                "model": model,
                "prediction_id": event_id,
                "value": plain(value),
                "timestamp": self.clock.now,
            }
            for event_id, value in zip(ids, values, strict=True)
        ]
        response = self.client.post("/v1/ingest/labels", content=orjson.dumps({"labels": labels}))
        assert response.status_code == 200, response.text

    def score(self, step: str) -> None:
        """One scoring pass at the current time, then a snapshot of ``/metrics``."""
        self.client.app.state.loop.run_once()
        self.metrics[f"{step} (t = T0 + {self.clock.now - T0:g})"] = self.scrape()

    def scrape(self) -> dict[str, float]:
        """The model's samples of ``/metrics``: ``name{label="value",...}`` to value."""
        response = self.client.get("/metrics")
        assert response.status_code == 200, response.text
        out = {}
        for family in text_string_to_metric_families(response.text):
            for s in family.samples:
                if "model" not in s.labels or s.name.endswith("_created"):
                    continue
                if s.name.startswith(DROPPED_METRICS):
                    continue
                labels = ",".join(f"{k}={json.dumps(v)}" for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}"] = s.value
        return out

    def get(self, path: str, **query: Any) -> Any:
        url = f"{path}?{urlencode(query)}" if query else path
        response = self.client.get(url)
        assert response.status_code == 200, (url, response.text)
        return url, response.json()

    def publish(
        self, models: list[str], *, rollup: bool, segments: list[str], count: bool
    ) -> dict[str, Any]:
        """Every window endpoint's answer, for every kind of window, keyed by its URL."""
        queries: list[dict[str, Any]] = [{}]
        if rollup:
            queries.append({"seconds": ROLLUP})
        queries += [{"segment": f"channel={value}"} for value in segments]
        if count:
            queries.append({"kind": "count"})
        http: dict[str, Any] = {}
        for model in models:
            base = f"/v1/models/{model}/versions/v1"
            for query in queries:
                url, listed = self.get(f"{base}/windows", limit=1000, **query)
                http[url] = listed
                for window in listed:
                    # Each window's own URL answers what the list holds (compared here,
                    # not recorded twice).
                    start = window["window_start"]
                    url, one = self.get(f"{base}/windows/{start!r}", **query)
                    differ = list(differences(normalised(window), normalised(one)))
                    assert not differ, f"{url} is not its entry in the list:\n" + "\n".join(
                        differ[:20]
                    )
                url, drift = self.get(f"{base}/drift", limit=10_000, **query)
                # Newest window first (the API's order); within one, by feature (the
                # store's order, as in normalised()).
                http[url] = sorted(drift, key=lambda d: (-d["window_start"], d["feature"]))
        return {"http": http, "metrics": self.metrics}


RECORDED_PARTS = ["accuracy", "quality", "correlation", "multivariate", "predictions"]
"""The registered window parts when the windows were recorded (feature, prediction
and label drift are scored whatever the setting)."""


@contextlib.contextmanager
def scene(url: str, **settings: Any) -> Iterator[Scene]:
    clock = Clock(T0 + 1)
    options = {
        "database_url": url,
        "window_seconds": W,
        "min_window_events": 30,
        # Above every window's rows: the row sample is the whole window, so SQLite's
        # random() never picks rows.
        "score_sample_rows": 100_000,
        # The parts of the recording: a part registered later adds its own results,
        # so it is left out here rather than re-recording.
        "window_parts": RECORDED_PARTS,
        **settings,
    }
    app = create_app(MonitorSettings(**options), clock=clock)
    with TestClient(app) as client:
        yield Scene(client, clock)


def main_scene(url: str) -> dict[str, Any]:
    """Four models, four base windows, rollups, segments and count windows."""
    settings: dict[str, Any] = {
        "rollup_seconds": [ROLLUP],
        "count_window": 150,
        "segment_keys": ["channel"],
        "max_segment_values": 2,
    }
    with scene(url, **settings) as s:
        rng = np.random.default_rng(20261203)
        s.register("churn", "binary", binary_reference(rng, 800))
        s.register("species", "multiclass", multiclass_reference(rng, 900))
        s.register("price", "regression", regression_reference(rng, 700))
        s.register("plain", "binary", None)  # no reference at all
        s.register("bare", "binary", binary_reference(rng, 500, labels=False))

        pending: dict[str, tuple[list[str], list[Any]]] = {}
        for k in range(4):
            s.clock.now = T0 + k * W + 1
            # Labels of the previous window arrive late, after it closed.
            for model, (ids, values) in pending.items():
                s.label(model, ids, values)
            pending = {}

            # churn: window 0 fully labelled, 1 half, 2 not at all and drifted, 3 a third.
            n = 240
            frame = inputs(rng, n, shift=1.8 if k == 2 else 1.0)
            if k == 2:
                frame = degrade(rng, frame)
            score = binary_outputs(rng, n, *((3, 3) if k >= 2 else (2, 3)))
            predicted = (score >= 0.5).astype(int)
            outputs = [
                {"predicted_class": int(c), "score": float(v)}
                for c, v in zip(predicted, score, strict=True)
            ]
            ids = s.post("churn", k, frame, outputs, rng=rng)
            truth = (rng.random(n) < score).astype(int)
            chosen = {0: range(n), 1: range(0, n, 2), 2: range(0), 3: range(0, n, 3)}[k]
            if chosen:
                pending["churn"] = ([ids[i] for i in chosen], [int(truth[i]) for i in chosen])

            if k < 2:
                # species: window 0 labelled, window 1 not (and class a served more often).
                n = 200
                proba = rng.dirichlet([4, 2, 1] if k else [2, 2, 2], n)
                predicted_class = np.array(CLASSES)[proba.argmax(axis=1)]
                outputs = [
                    {
                        "predicted_class": str(c),
                        "probabilities": dict(zip(CLASSES, p.tolist(), strict=True)),
                    }
                    for c, p in zip(predicted_class, proba, strict=True)
                ]
                ids = s.post("species", k, inputs(rng, n), outputs, rng=rng)
                if k == 0:
                    truth_class = [str(rng.choice(CLASSES, p=p)) for p in proba]
                    pending["species"] = (ids, truth_class)

                # price: window 0 labelled; window 1 below min_window_events.
                n = 200 if k == 0 else 20
                value = np.round(rng.normal(104, 10, n), 1)
                ids = s.post(
                    "price", k, inputs(rng, n), [{"value": float(v)} for v in value], rng=rng
                )
                if k == 0:
                    pending["price"] = (ids, (value + rng.normal(0, 8, n)).tolist())

                # plain (no reference): window 0 labelled, no latency reported.
                n = 100
                predicted = rng.integers(0, 2, n)
                ids = s.post(
                    "plain",
                    k,
                    inputs(rng, n),
                    [{"predicted_class": int(c)} for c in predicted],
                    rng=rng,
                    latency=False,
                )
                if k == 0:
                    pending["plain"] = (ids, rng.integers(0, 2, n).tolist())

                # bare (a reference of features only): labelled, but nothing to compare to.
                n = 80
                ids = s.post(
                    "bare", k, inputs(rng, n), [{"predicted_class": 1, "score": 0.7}] * n, rng=rng
                )
                pending.setdefault("bare", (ids[:40], [1] * 40))
            s.score(f"window {k}")

        s.clock.now = T0 + 4 * W + 1
        for model, (ids, values) in pending.items():
            s.label(model, ids, values)
        s.score("late labels of window 3")
        s.clock.now = T0 + 2 * ROLLUP + 1  # the second rollup closes
        s.score("second rollup closed")
        return s.publish(
            ["churn", "species", "price", "plain", "bare"],
            rollup=True,
            segments=CHANNELS,
            count=True,
        )


def options_scene(url: str) -> dict[str, Any]:
    """Per-feature drift tests and the domain-classifier multivariate test."""
    settings: dict[str, Any] = {
        "rollup_seconds": [],
        "drift_test": "psi",
        "drift_tests": {"income": "jensenshannon", "age": "wasserstein", "region": "hellinger"},
        "multivariate_method": "domain_classifier",
        "drift_fdr": 0.1,
    }
    with scene(url, **settings) as s:
        rng = np.random.default_rng(1203)
        s.register("churn", "binary", binary_reference(rng, 600))
        for k in range(2):
            s.clock.now = T0 + k * W + 1
            n = 300
            frame = inputs(rng, n, shift=1.3 if k else 1.0)
            score = binary_outputs(rng, n)
            outputs = [{"predicted_class": int(v >= 0.5), "score": float(v)} for v in score]
            ids = s.post("churn", k, frame, outputs, rng=rng)
            s.label("churn", ids[::2], (rng.random(n) < score)[::2].astype(int).tolist())
            s.score(f"window {k}")
        s.clock.now = T0 + 2 * W + 1
        s.score("window 1 closed")
        return s.publish(["churn"], rollup=False, segments=[], count=False)


def record(new_database: Callable[[], str]) -> dict[str, Any]:
    """Everything published by both scenes, each on a fresh database."""
    return {"main": main_scene(new_database()), "options": options_scene(new_database())}


# ------------------------------------------------------------------------ comparison


def normalised(value: Any) -> Any:
    """The recording's form: dropped keys removed, tuples as lists, and a window's
    per-feature ``drift`` list sorted by feature (its order is the store's: the model's
    feature order on SQLite, jsonb's key order on PostgreSQL)."""
    if isinstance(value, dict):
        out = {k: normalised(v) for k, v in value.items() if k not in DROPPED_KEYS}
        if isinstance(out.get("drift"), list):
            out["drift"] = sorted(out["drift"], key=lambda d: d["feature"])
        return out
    if isinstance(value, list | tuple):
        return [normalised(v) for v in value]
    return value


def renamed(recorded: Any) -> Any:
    """The recording with :data:`RENAMED_KEYS` and :data:`RENAMED_METRICS` applied."""
    if isinstance(recorded, dict):
        out = {}
        for key, value in recorded.items():
            name, brace, labels = key.partition("{")
            if brace and name in RENAMED_METRICS:
                key = RENAMED_METRICS[name] + brace + labels
            out[RENAMED_KEYS.get(key, key)] = renamed(value)
        return out
    if isinstance(recorded, list):
        return [renamed(v) for v in recorded]
    return recorded


def differences(expected: Any, found: Any, path: str = "$") -> Iterator[str]:
    """Where ``found`` is not ``expected``: keys and strings exactly, numbers to 1e-12."""
    if isinstance(expected, dict) and isinstance(found, dict):
        for key in sorted(expected.keys() - found.keys()):
            yield f"{path}[{key!r}]: missing (recorded {_short(expected[key])})"
        for key in sorted(found.keys() - expected.keys()):
            yield f"{path}[{key!r}]: not in the recording (found {_short(found[key])})"
        for key in sorted(expected.keys() & found.keys()):
            yield from differences(expected[key], found[key], f"{path}[{key!r}]")
    elif isinstance(expected, list) and isinstance(found, list):
        if len(expected) != len(found):
            yield f"{path}: {len(found)} items, recorded {len(expected)}"
        for i, (e, f) in enumerate(zip(expected, found, strict=False)):
            yield from differences(e, f, f"{path}[{i}]")
    elif _number(expected) and _number(found):
        if not _close(float(expected), float(found)):
            yield f"{path}: {found!r}, recorded {expected!r}"
    elif type(expected) is not type(found) or expected != found:
        yield f"{path}: {_short(found)}, recorded {_short(expected)}"


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return math.isclose(a, b, rel_tol=REL, abs_tol=ABS)


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= 120 else text[:117] + "..."


def dump(recording: dict[str, Any]) -> str:
    # json writes floats with repr: they read back bit for bit.
    return json.dumps(recording, sort_keys=True, indent=1) + "\n"


@pytest.fixture(params=["sqlite", "postgresql"])
def new_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[], str]]:
    """Makes fresh, empty databases on one backend (dropped after the test)."""
    made: list[str] = []

    def make() -> str:
        if request.param == "sqlite":
            made.append(str(tmp_path / f"golden-{len(made)}.db"))
            return f"sqlite:///{made[-1]}"
        name, url = _new_pg_database(request.getfixturevalue("pg_server"))
        made.append(name)
        return url.replace("postgresql://", "postgresql+psycopg://", 1)

    yield make
    if request.param == "postgresql":
        admin = request.getfixturevalue("pg_server")
        for name in made:
            _drop_pg_database(admin, name)


def test_every_published_number_matches_the_recording(
    request: pytest.FixtureRequest, new_database: Callable[[], str]
) -> None:
    """The SQLite run records (in record mode) and both backends are checked against it:
    the published results do not depend on the database."""
    found = json.loads(dump(normalised(record(new_database))))  # the recording's form
    backend = request.node.callspec.params["new_database"]
    if os.environ.get(RECORD_ENV) == "1" and backend == "sqlite":
        again = json.loads(dump(normalised(record(new_database))))
        unstable = list(differences(found, again))
        assert not unstable and dump(found) == dump(again), (
            "two runs of the scenes disagree, so they cannot be recorded:\n"
            + "\n".join(unstable[:20])
        )
        GOLDEN.parent.mkdir(parents=True, exist_ok=True)
        GOLDEN.write_text(dump(found))
        return
    assert GOLDEN.exists(), (
        f"no recording at {GOLDEN}: record one with {RECORD_ENV}=1 python -m pytest {__file__}"
    )
    expected = renamed(json.loads(GOLDEN.read_text()))
    diff = list(differences(expected, found))
    assert not diff, (
        f"{len(diff)} published values differ from the golden recording {GOLDEN.name} "
        f"(numbers: rel {REL} or abs {ABS}); the first ones:\n"
        + "\n".join(diff[:25])
        + f"\nIf the change is meant, re-record: {RECORD_ENV}=1 python -m pytest {__file__}"
    )


def test_the_comparison_sees_a_change_in_the_last_digits() -> None:
    """The harness itself: a change above 1e-12 is reported with its path, one below is
    not, and keys, strings and booleans must be identical."""
    recorded = {"w": [{"value": 0.123456789012345, "test": "ks", "drifted": True, "n": 3}]}
    same = {"w": [{"value": 0.123456789012345 + 9e-13, "test": "ks", "drifted": True,
                   "n": 3.0}]}  # fmt: skip
    assert list(differences(recorded, same)) == []
    changed = {"w": [{"value": 0.12345678902, "test": "psi", "drifted": 1, "extra": None}]}
    assert list(differences(recorded, changed)) == [
        "$['w'][0]['n']: missing (recorded 3)",
        "$['w'][0]['extra']: not in the recording (found null)",
        "$['w'][0]['drifted']: 1, recorded true",
        "$['w'][0]['test']: \"psi\", recorded \"ks\"",
        "$['w'][0]['value']: 0.12345678902, recorded 0.123456789012345",
    ]
    # Relative above 1: 1e-12 of the value, not of 1.
    assert list(differences([1e6], [1e6 * (1 + 5e-13)])) == []
    assert list(differences([1e6], [1e6 + 1e-5])) == ["$[0]: 1000000.00001, recorded 1000000.0"]
    assert list(differences({"x": float("nan")}, {"x": float("nan")})) == []
    assert list(differences({"x": [1, 2]}, {"x": [1]})) == ["$['x']: 1 items, recorded 2"]


def test_a_declared_rename_keeps_the_recorded_numbers_checked(monkeypatch) -> None:
    """A field or metric renamed on purpose is compared under its new name."""
    monkeypatch.setitem(RENAMED_KEYS, "missing_share", "missing_ratio")
    monkeypatch.setitem(RENAMED_METRICS, "sidewatch_old", "sidewatch_new")
    recorded = {"q": [{"missing_share": 0.25}], "m": {'sidewatch_old{model="a"}': 1.0}}
    assert renamed(recorded) == {
        "q": [{"missing_ratio": 0.25}],
        "m": {'sidewatch_new{model="a"}': 1.0},
    }
    published = {"q": [{"missing_ratio": 0.5}], "m": {'sidewatch_new{model="a"}': 1.0}}
    assert list(differences(renamed(recorded), published)) == [
        "$['q'][0]['missing_ratio']: 0.5, recorded 0.25"
    ]
