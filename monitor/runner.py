"""One runner for the monitor's background work: registered jobs in, budgeted runs out.

A job is any object with one method, ``run(budget) -> Progress``. It does its work in
slices, asks ``budget.spent()`` between them, and when the budget is spent it stops,
leaves the rest where its next run will find it and says so (``Progress(backlog,
yielded=True)``). The runner keeps, per job, the backlog the job last reported, its
runs by outcome and a histogram of their durations; the exporter reads them at scrape
time (:meth:`Runner.stats`).

Scheduling, on one thread: a job runs every ``interval_seconds``; a job that yielded
runs again as soon as every other due job has had its turn, so a long backlog is
worked off in slices without stalling the others. An error in one job is logged and
counted (outcome ``error``), and the job runs again after its interval; the other jobs
are not affected. Stopping the runner ends the running job's budget at once (its next
``spent()`` is true) and joins the thread.

Jobs are registered by name in a plain dict; an unknown name's error lists the valid
ones. Tests drive the runner without its thread (:meth:`Runner.run_once`,
:meth:`Runner.run_due`) on an injected clock.
"""

from __future__ import annotations

import bisect
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from monitor.errors import ConfigError

__all__ = [
    "OUTCOMES",
    "RUN_SECONDS_BUCKETS",
    "Budget",
    "Job",
    "JobStats",
    "Outcome",
    "Progress",
    "Runner",
    "Schedule",
]

logger = logging.getLogger("sidewatch.runner")

Outcome = Literal["done", "yielded", "error"]
"""How a run ended: its work finished, it stopped at its budget with work left, or it
raised."""
OUTCOMES: tuple[Outcome, ...] = ("done", "yielded", "error")

RUN_SECONDS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
"""Upper bounds (seconds) of the run-duration histogram's buckets (then ``+Inf``)."""


class Budget:
    """The time one run may take; the job checks :meth:`spent` between slices.

    Args:
        seconds: The run's time budget (``math.inf``: none).
        clock: Monotonic time in seconds (the runner's).
        stopping: Once set, the budget counts as spent (the runner is stopping).
    """

    def __init__(
        self,
        seconds: float,
        clock: Callable[[], float] = time.monotonic,
        stopping: threading.Event | None = None,
    ) -> None:
        self.seconds = seconds
        self._clock = clock
        self._stopping = stopping
        self.deadline = clock() + seconds

    @classmethod
    def unlimited(cls) -> Budget:
        """A budget that is never spent (a direct call, such as a test's pass)."""
        return cls(math.inf)

    def spent(self) -> bool:
        """Whether the job must stop now and leave the rest for its next run."""
        if self._stopping is not None and self._stopping.is_set():
            return True
        return self._clock() >= self.deadline

    def left(self) -> float:
        """Seconds left of the budget (0 once spent)."""
        return 0.0 if self.spent() else max(0.0, self.deadline - self._clock())


@dataclass(frozen=True, slots=True)
class Progress:
    """What a run left behind.

    Attributes:
        backlog: Units of work waiting (the job's own unit: windows, rows, files).
        yielded: The run stopped at its budget with work left: run it again soon.
    """

    backlog: int
    yielded: bool = False


class Job(Protocol):
    """A unit of background work the runner schedules (structural: any object with
    this method is one)."""

    def run(self, budget: Budget) -> Progress:
        """Work until done or ``budget.spent()``; report what is left.

        Raises:
            Exception: Any error; the runner logs and counts it, and runs the job
                again after its interval.
        """
        ...


@dataclass(frozen=True, slots=True)
class Schedule:
    """How often a job runs and how long one run may take.

    Raises:
        ConfigError: An interval or a budget that is not a positive number of seconds.
    """

    interval_seconds: float
    budget_seconds: float

    def __post_init__(self) -> None:
        for name in ("interval_seconds", "budget_seconds"):
            value = getattr(self, name)
            if not (value > 0 and math.isfinite(value)):
                raise ConfigError(f"a job's {name} must be a positive number, got {value!r}")


@dataclass(frozen=True, slots=True)
class JobStats:
    """One job's numbers, as the exporter reads them.

    Attributes:
        name: The job's registered name.
        schedule: Its interval and budget.
        backlog: The backlog its last successful run reported (0 before any).
        runs: Runs by outcome (every outcome present).
        buckets: Run durations: per bound of ``bounds``, then ``+Inf``, the number of
            runs that took at most that long (cumulative, as Prometheus counts them).
        bounds: The histogram's bucket bounds in seconds.
        seconds_sum: Total seconds its runs took.
        last_success: When a run last ended without an error (the runner's clock), or None.
    """

    name: str
    schedule: Schedule
    backlog: int
    runs: dict[Outcome, int]
    buckets: tuple[int, ...]
    bounds: tuple[float, ...]
    seconds_sum: float
    last_success: float | None


@dataclass(slots=True)
class _Entry:
    job: Job
    schedule: Schedule
    due: float
    backlog: int = 0
    runs: dict[Outcome, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    counts: list[int] = field(default_factory=list)
    seconds_sum: float = 0.0
    last_success: float | None = None


class Runner:
    """Runs registered jobs on one background thread, each within its time budget.

    Args:
        clock: Monotonic time in seconds, for schedules and budgets (injected in tests).
        bounds: Bucket bounds (seconds) of the run-duration histogram.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        bounds: tuple[float, ...] = RUN_SECONDS_BUCKETS,
    ) -> None:
        self._clock = clock
        self._bounds = tuple(sorted(bounds))
        self._jobs: dict[str, _Entry] = {}
        self._lock = threading.Lock()
        """Guards the entries' numbers (the exporter reads them from another thread)."""
        self._run_lock = threading.Lock()
        """One run at a time: the thread's and a direct :meth:`run_once` never overlap."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, name: str, job: Job, schedule: Schedule) -> None:
        """Register a job; its first run is one interval from now.

        Raises:
            ConfigError: A job of that name is already registered.
        """
        with self._lock:
            if name in self._jobs:
                raise ConfigError(f"a background job named {name!r} is already registered")
            self._jobs[name] = _Entry(
                job,
                schedule,
                due=self._clock() + schedule.interval_seconds,
                counts=[0] * (len(self._bounds) + 1),
            )

    def names(self) -> list[str]:
        """The registered jobs' names, sorted."""
        with self._lock:
            return sorted(self._jobs)

    def _entry(self, name: str) -> _Entry:
        try:
            return self._jobs[name]
        except KeyError:
            valid = ", ".join(sorted(self._jobs)) or "none registered"
            raise ConfigError(f"no background job named {name!r}; valid: {valid}") from None

    # -- running -----------------------------------------------------------------------

    def run_once(self, name: str, budget_seconds: float | None = None) -> Outcome:
        """Run one job now, whether due or not, within its budget (or ``budget_seconds``).

        Errors are logged and counted, never raised.

        Raises:
            ConfigError: No job of that name is registered (the message lists them).
        """
        with self._lock:
            entry = self._entry(name)
        seconds = entry.schedule.budget_seconds if budget_seconds is None else budget_seconds
        with self._run_lock:
            start = self._clock()
            progress: Progress | None = None
            try:
                progress = entry.job.run(Budget(seconds, self._clock, self._stop))
            except Exception:  # one job's failure must not stop the others
                logger.exception("background job %r failed", name)
            end = self._clock()
        outcome: Outcome = (
            "error" if progress is None else "yielded" if progress.yielded else "done"
        )
        elapsed = max(0.0, end - start)
        with self._lock:
            entry.runs[outcome] += 1
            entry.counts[bisect.bisect_left(self._bounds, elapsed)] += 1
            entry.seconds_sum += elapsed
            if progress is not None:
                entry.backlog = progress.backlog
                entry.last_success = end
            # A job that yielded goes to the back of the queue: due now, but after
            # every job that was already due.
            entry.due = end if outcome == "yielded" else end + entry.schedule.interval_seconds
        return outcome

    def run_due(self) -> list[str]:
        """Run, once each, every job due now, the longest waiting first; returns their
        names in the order run."""
        now = self._clock()
        with self._lock:
            due = sorted((e.due, name) for name, e in self._jobs.items() if e.due <= now)
        ran = []
        for _, name in due:
            if self._stop.is_set():
                break
            self.run_once(name)
            ran.append(name)
        return ran

    def next_due(self) -> float | None:
        """Seconds until the next job is due (0 if one is due now), or None without jobs."""
        with self._lock:
            if not self._jobs:
                return None
            return max(0.0, min(e.due for e in self._jobs.values()) - self._clock())

    def start(self) -> None:
        """Start the background thread (once; again after :meth:`stop` has ended it)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="sidewatch-runner", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop: the running job's budget ends at once; wait up to ``timeout`` for it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if not self._thread.is_alive():
                self._thread = None

    @property
    def running(self) -> bool:
        """Whether the background thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while True:
            pause = self.next_due()
            if self._stop.wait(60.0 if pause is None else pause):
                return
            self.run_due()

    # -- numbers -----------------------------------------------------------------------

    def stats(self) -> list[JobStats]:
        """Every job's numbers, by name (for the exporter, at scrape time)."""
        with self._lock:
            out = []
            for name, e in sorted(self._jobs.items()):
                cumulative, total = [], 0
                for count in e.counts:
                    total += count
                    cumulative.append(total)
                out.append(
                    JobStats(
                        name=name,
                        schedule=e.schedule,
                        backlog=e.backlog,
                        runs=dict(e.runs),
                        buckets=tuple(cumulative),
                        bounds=self._bounds,
                        seconds_sum=e.seconds_sum,
                        last_success=e.last_success,
                    )
                )
            return out

    def job_stats(self, name: str) -> JobStats:
        """One job's numbers.

        Raises:
            ConfigError: No job of that name is registered (the message lists them).
        """
        with self._lock:
            self._entry(name)
        return next(s for s in self.stats() if s.name == name)
