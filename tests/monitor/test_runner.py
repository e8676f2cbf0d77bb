"""The background runner: jobs by name, intervals, time budgets, backlog, errors, metrics;
and the scoring loop as its first job, whose passes cut by a budget add up to the same
results as one whole pass."""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient

from monitor.api import create_app
from monitor.errors import ConfigError
from monitor.runner import Budget, Progress, Runner, Schedule
from monitor.settings import MonitorSettings
from tests.conftest import credit_model
from tests.monitor.test_scoring import T0, Clock, W, reference_frame, samples


class Ticks:
    """The runner's monotonic clock, moved by the test (and by the jobs' work)."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Queue:
    """A test-only job: ``items`` units of work, each taking ``cost`` seconds of the
    injected clock; it works until its budget is spent and reports what is left."""

    def __init__(self, ticks: Ticks, items: int, cost: float = 1.0) -> None:
        self.ticks = ticks
        self.left = items
        self.cost = cost
        self.done: list[float] = []
        """The clock at each unit done."""

    def run(self, budget: Budget) -> Progress:
        while self.left and not budget.spent():
            self.ticks.now += self.cost
            self.left -= 1
            self.done.append(self.ticks.now)
        return Progress(self.left, yielded=self.left > 0)


class Ping:
    """A test-only job with nothing to do but note when it ran."""

    def __init__(self, ticks: Ticks) -> None:
        self.ticks = ticks
        self.ran: list[float] = []

    def run(self, budget: Budget) -> Progress:
        self.ran.append(self.ticks.now)
        return Progress(0)


class Failing:
    def __init__(self) -> None:
        self.calls = 0

    def run(self, budget: Budget) -> Progress:
        self.calls += 1
        raise RuntimeError("disk on fire")


# ----------------------------------------------------------------------- the runner


def test_a_job_runs_once_per_interval() -> None:
    ticks = Ticks()
    runner = Runner(clock=ticks)
    job = Queue(ticks, items=100, cost=0.0)
    runner.add("tidy", job, Schedule(interval_seconds=10, budget_seconds=1))
    ran = []
    for t in (0, 5, 9.999, 10, 15, 19.999, 20, 35):
        ticks.now = t
        ran.append(runner.run_due())
    assert ran == [[], [], [], ["tidy"], [], [], ["tidy"], ["tidy"]]
    assert runner.next_due() == 10


def test_a_job_stops_at_its_budget_and_leaves_the_rest_as_backlog() -> None:
    ticks = Ticks()
    runner = Runner(clock=ticks)
    job = Queue(ticks, items=10, cost=1.0)
    runner.add("backfill", job, Schedule(interval_seconds=60, budget_seconds=3))
    assert runner.run_once("backfill") == "yielded"
    assert job.done == [1, 2, 3], "three 1 s slices fit a 3 s budget"
    stats = runner.job_stats("backfill")
    assert stats.backlog == 7
    assert stats.runs == {"done": 0, "yielded": 1, "error": 0}
    # It yielded, so it is due again at once, not after its interval.
    assert runner.run_due() == ["backfill"]
    assert runner.run_due() == ["backfill"]
    assert runner.run_once("backfill") == "done"
    assert job.left == 0
    stats = runner.job_stats("backfill")
    assert stats.backlog == 0
    assert stats.runs == {"done": 1, "yielded": 3, "error": 0}
    assert stats.seconds_sum == 10
    # Durations 3, 3, 3 and 1 s: cumulative buckets at the bounds 0.5, 1, 2.5, 5 and +Inf.
    counts = dict(zip(stats.bounds, stats.buckets, strict=False))
    assert (counts[0.5], counts[1.0], counts[2.5], counts[5.0]) == (0, 1, 1, 4)
    assert stats.buckets[-1] == 4
    assert runner.next_due() == 60, "done: the next run is one interval away"


def test_a_job_with_an_endless_backlog_does_not_starve_the_others() -> None:
    ticks = Ticks()
    runner = Runner(clock=ticks)
    busy = Queue(ticks, items=10**9, cost=1.0)
    light = Ping(ticks)
    runner.add("busy", busy, Schedule(interval_seconds=1, budget_seconds=5))
    runner.add("light", light, Schedule(interval_seconds=10, budget_seconds=1))
    order = []
    ticks.now = 1
    while ticks.now < 100:
        order += runner.run_due()
    # The busy job runs back to back in 5 s slices; the light one still gets its turn
    # every 10 s, at most one busy slice late (its next interval counts from then).
    assert order.count("light") == len(light.ran) >= 6, order
    gaps = np.diff([0.0, *light.ran])
    assert gaps.max() <= 10 + 5, light.ran
    assert runner.job_stats("busy").runs["yielded"] >= 15


def test_an_error_in_one_job_is_logged_and_counted_and_the_others_run(caplog) -> None:
    ticks = Ticks()
    runner = Runner(clock=ticks)
    failing = Failing()
    job = Queue(ticks, items=3, cost=0.0)
    runner.add("broken", failing, Schedule(interval_seconds=10, budget_seconds=1))
    runner.add("fine", job, Schedule(interval_seconds=10, budget_seconds=1))
    ticks.now = 10
    with caplog.at_level(logging.ERROR, logger="sidewatch.runner"):
        assert runner.run_due() == ["broken", "fine"]
    assert "background job 'broken' failed" in caplog.text
    assert "disk on fire" in caplog.text  # the traceback is logged
    assert job.left == 0
    assert runner.job_stats("broken").runs == {"done": 0, "yielded": 0, "error": 1}
    assert runner.job_stats("fine").runs == {"done": 1, "yielded": 0, "error": 0}
    # The failed job waits its interval, like a finished one, rather than spin.
    assert runner.run_due() == []
    ticks.now = 20
    assert runner.run_due() == ["broken", "fine"]
    assert failing.calls == 2


def test_job_names_are_checked() -> None:
    runner = Runner(clock=Ticks())
    runner.add("scoring", Queue(Ticks(), 0), Schedule(1, 1))
    runner.add("retention", Queue(Ticks(), 0), Schedule(1, 1))
    with pytest.raises(ConfigError, match="named 'scorign'; valid: retention, scoring"):
        runner.run_once("scorign")
    with pytest.raises(ConfigError, match="valid: retention, scoring"):
        runner.job_stats("nope")
    with pytest.raises(ConfigError, match="already registered"):
        runner.add("scoring", Queue(Ticks(), 0), Schedule(1, 1))
    assert runner.names() == ["retention", "scoring"]


@pytest.mark.parametrize("bad", [0, -1, math.inf, math.nan])
def test_a_schedule_needs_positive_seconds(bad: float) -> None:
    with pytest.raises(ConfigError, match="interval_seconds must be a positive number"):
        Schedule(interval_seconds=bad, budget_seconds=1)
    with pytest.raises(ConfigError, match="budget_seconds must be a positive number"):
        Schedule(interval_seconds=1, budget_seconds=bad)


def test_the_thread_runs_due_jobs_and_stopping_ends_the_running_budget() -> None:
    started = threading.Event()
    proceed = threading.Event()
    seen: list[bool] = []

    class Waits:
        def run(self, budget: Budget) -> Progress:
            started.set()
            seen.append(budget.spent())
            proceed.wait(10)
            seen.append(budget.spent())
            return Progress(0)

    runner = Runner()  # the real monotonic clock, on its own thread
    runner.add("waits", Waits(), Schedule(interval_seconds=0.001, budget_seconds=3600))
    runner.start()
    assert started.wait(10), "the thread ran the due job"
    assert runner.running
    runner.stop(timeout=0)  # asks the thread to stop; the job is still in its run
    proceed.set()
    runner.stop(timeout=10)
    assert not runner.running
    assert seen == [False, True], "stopping spends the running job's budget at once"
    assert runner.job_stats("waits").runs["done"] == 1


# ------------------------------------------------------------ the scoring job on it


class Slices(Budget):
    """A budget of ``n`` windows: spent at the (n+1)-th check."""

    def __init__(self, n: int) -> None:
        super().__init__(math.inf)
        self.n = n

    def spent(self) -> bool:
        self.n -= 1
        return self.n < 0


SETTINGS: dict[str, Any] = {
    "window_seconds": W,
    "rollup_seconds": [3 * W],
    "count_window": 50,
    "min_window_events": 30,
    "segment_keys": ["channel"],
    "max_segment_values": 2,
    "drift_test": "psi",
}


def _fill(client: TestClient, rng: np.random.Generator) -> list[str]:
    """A reference, then three windows of 120 events (two channels scored, one cut)."""
    client.put("/v1/models/credit", json=credit_model().model_dump())
    upload = client.put(
        "/v1/models/credit/versions/v1/reference",
        content=reference_frame(rng).to_csv(index=False).encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert upload.status_code == 201, upload.text
    ids = []
    for window in range(3):
        frame = reference_frame(rng, 120)
        frame["income"] *= 1 + 0.3 * window
        channels = rng.choice(["web", "app", "store"], 120, p=[0.5, 0.3, 0.2])
        events = [
            {
                "event_id": f"w{window}-{i}",
                "model": "credit",
                "model_version": "v1",
                "timestamp": T0 + window * W + i * (W - 1) / 120,
                "features": {
                    "income": row.income,
                    "age": row.age,
                    "region": row.region,
                    "has_card": bool(row.has_card),
                },
                "outputs": {"predicted_class": int(row.target)},
                "segment": {"channel": str(channels[i])},
            }
            for i, row in enumerate(frame.itertuples(index=False))
        ]
        response = client.post("/v1/ingest/predictions", content=orjson.dumps({"events": events}))
        assert response.status_code == 200, response.text
        ids += [e["event_id"] for e in events]
    return ids


def _label(client: TestClient, ids: list[str], now: float) -> None:
    labels = [
        {
            "event_id": f"l-{event_id}",
            "model": "credit",
            "prediction_id": event_id,
            "value": i % 2,
            "timestamp": now,
        }
        for i, event_id in enumerate(ids)
    ]
    response = client.post("/v1/ingest/labels", content=orjson.dumps({"labels": labels}))
    assert response.status_code == 200, response.text


def _published(client: TestClient) -> dict[str, Any]:
    """Every window the API lists, of every kind, without the scoring time."""
    out = {}
    base = "/v1/models/credit/versions/v1/windows"
    queries = [{}, {"seconds": 3 * W}, {"kind": "count"}]
    queries += [{"segment": f"channel={v}"} for v in ("web", "app", "store")]
    for query in queries:
        response = client.get(base, params={"limit": 1000, **query})
        assert response.status_code == 200, response.text
        listed = response.json()
        out[str(query)] = [{k: v for k, v in w.items() if k != "scored_at"} for w in listed]
    return out


def _scored(sqlite_url: str, sliced: bool) -> tuple[dict[str, Any], list[int]]:
    """The published windows after scoring the same data in whole passes, or in passes
    of one window each; with the backlog each sliced pass reported."""
    clock = Clock(T0 + 10)
    backlogs: list[int] = []
    settings = MonitorSettings(database_url=sqlite_url, **SETTINGS)
    with TestClient(create_app(settings, clock=clock)) as client:
        loop = client.app.state.loop

        def score() -> None:
            if not sliced:
                loop.run_once()
                return
            for _ in range(100):
                progress = loop.run(Slices(1))
                backlogs.append(progress.backlog)
                if not progress.yielded:
                    return
            raise AssertionError("the backlog never emptied")

        ids = _fill(client, np.random.default_rng(5))
        clock.now = T0 + 3 * W + 1  # every window and the rollup closed
        score()
        clock.now += W  # late labels, a base window later: rescored
        _label(client, ids[::3], clock.now)
        score()
        return _published(client), backlogs


def test_scoring_in_budgeted_slices_publishes_what_one_pass_does(tmp_path) -> None:
    whole, _ = _scored(f"sqlite:///{tmp_path}/whole.db", sliced=False)
    sliced, backlogs = _scored(f"sqlite:///{tmp_path}/sliced.db", sliced=True)
    counts = {k: len(v) for k, v in whole.items()}
    assert counts.pop("{'segment': 'channel=store'}") == 0, "the third channel is cut"
    assert all(counts.values()), counts
    assert sliced == whole
    # Three base windows and their segments, a rollup and count blocks: many one-window
    # passes, each leaving one less.
    assert backlogs[0] > 3, backlogs
    assert backlogs[-1] == 0


def test_the_scoring_loop_is_the_runners_job_and_its_numbers_are_exported(sqlite_url) -> None:
    clock = Clock(T0 + 10)
    settings = MonitorSettings(database_url=sqlite_url, **SETTINGS)
    with TestClient(create_app(settings, clock=clock)) as client:
        runner = client.app.state.runner
        assert runner.names() == ["prediction_results_retention", "scoring"]
        _fill(client, np.random.default_rng(5))
        clock.now = T0 + 3 * W + 1
        assert runner.run_once("scoring") == "done"
        assert client.app.state.loop.backlog() == 0

        client.app.state.loop._scorer.score = _raise  # the next pass fails
        client.app.state.loop.mark("credit", "v1", [T0])
        assert runner.run_once("scoring") == "error"

        def scoring(name: str) -> dict[Any, float]:
            return {k: v for k, v in samples(client, name).items() if ("job", "scoring") in k}

        runs = scoring("sidewatch_background_runs_total")
        assert runs == {
            (("job", "scoring"), ("outcome", "done")): 1,
            (("job", "scoring"), ("outcome", "yielded")): 0,
            (("job", "scoring"), ("outcome", "error")): 1,
        }
        assert scoring("sidewatch_background_backlog") == {(("job", "scoring"),): 0}
        assert scoring("sidewatch_background_run_seconds_count") == {(("job", "scoring"),): 2}
        assert scoring("sidewatch_background_budget_seconds") == {
            (("job", "scoring"),): settings.score_budget_seconds
        }
        # The scoring loop's own failure counter is the runner's count of its errors.
        assert samples(client, "sidewatch_scoring_failures_total") == {(): 1}


def _raise(*_: Any) -> Any:
    raise RuntimeError("scorer broke")


def test_a_scoring_budget_must_be_positive() -> None:
    with pytest.raises(ValueError, match="score_budget_seconds"):
        MonitorSettings(score_budget_seconds=0)
