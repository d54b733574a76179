"""Is the service healthy? The state the watchdog, ``/healthz``, metrics and STATUS share.

The scheduler loop proves it is alive by running a heartbeat job on an executor of its own;
the main thread feeds systemd's watchdog only while that heartbeat is fresh and no job has run
for longer than its ``stall_s``. A blind timer thread would keep a wedged service alive.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

#: Phases of the service, in order.
STARTING, READY, STOPPING = "starting", "ready", "stopping"


@dataclass(frozen=True, kw_only=True)
class JobState:
    """What one job did last."""

    name: str
    running_since: float | None = None  # monotonic, while running
    last_started_at: dt.datetime | None = None
    last_finished_at: dt.datetime | None = None
    last_success_at: dt.datetime | None = None
    last_outcome: str | None = None  # ok, skipped, unavailable, failed
    last_error: str | None = None
    last_duration_s: float | None = None
    last_note: str | None = None
    runs: int = 0
    failures: int = 0

    def as_json(self) -> dict[str, Any]:
        def iso(t: dt.datetime | None) -> str | None:
            return t.isoformat() if t else None
        return {"running": self.running_since is not None,
                "last_started_at": iso(self.last_started_at),
                "last_finished_at": iso(self.last_finished_at),
                "last_success_at": iso(self.last_success_at), "last_outcome": self.last_outcome,
                "last_error": self.last_error, "last_duration_s": self.last_duration_s,
                "note": self.last_note, "runs": self.runs, "failures": self.failures}


class Health:
    """Thread-safe: jobs write, the main loop and the HTTP threads read."""

    def __init__(self, *, heartbeat_max_age_s: float, stall_s: dict[str, float],
                 now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.heartbeat_max_age_s = heartbeat_max_age_s
        self.stall_s = dict(stall_s)
        self._now, self._mono = now, monotonic
        self._lock = threading.Lock()
        self._jobs = {name: JobState(name=name) for name in stall_s}
        self.phase = STARTING
        self.last_beat: float | None = None

    def beat(self) -> None:
        self.last_beat = self._mono()

    def job_started(self, name: str) -> None:
        with self._lock:
            state = self._jobs.get(name, JobState(name=name))
            self._jobs[name] = replace(state, running_since=self._mono(),
                                       last_started_at=self._now())

    def job_finished(self, name: str, outcome: str, *, error: str | None = None,
                     note: str | None = None) -> float:
        """Record the end of a run; returns its duration in seconds."""
        with self._lock:
            state = self._jobs[name]
            duration = self._mono() - (state.running_since or self._mono())
            now = self._now()
            self._jobs[name] = replace(
                state, running_since=None, last_finished_at=now, last_outcome=outcome,
                last_error=error, last_duration_s=round(duration, 3), last_note=note,
                last_success_at=now if outcome != "failed" else state.last_success_at,
                runs=state.runs + 1, failures=state.failures + (outcome == "failed"),
            )
            return duration

    def jobs(self) -> dict[str, JobState]:
        with self._lock:
            return dict(self._jobs)

    def running(self) -> list[tuple[str, float]]:
        """Jobs in hand, with how long each has run (seconds)."""
        now = self._mono()
        return [(j.name, now - j.running_since) for j in self.jobs().values()
                if j.running_since is not None]

    def loop_problems(self) -> list[str]:
        """Why the scheduler loop is not healthy; empty when it is. Feeds the watchdog."""
        problems = []
        if self.last_beat is None:
            problems.append("the scheduler has not run its heartbeat yet")
        else:
            age = self._mono() - self.last_beat
            if age > self.heartbeat_max_age_s:
                problems.append(f"the scheduler's heartbeat is {age:.0f}s old")
        for name, for_s in self.running():
            limit = self.stall_s.get(name)
            if limit is not None and for_s > limit:
                problems.append(f"job {name} has run for {for_s:.0f}s (stall_s is {limit:g})")
        return problems
