"""When jobs fire: cron in Europe/London wall-clock time that a DST change never doubles.

APScheduler 3.11's ``CronTrigger`` fires twice for a wall-clock time that the autumn change
repeats (01:30 on the last Sunday of October happens at 00:30 and 01:30 UTC), and moves a
time that the spring change skips to the first instant after the gap. ``LondonCronTrigger``
keeps the second behaviour (nothing is skipped) and removes the first: a repeated wall-clock
time fires at its first occurrence only. The nightly evaluation is also guarded in the
database, once per London date (``slots.py``); this makes the timer itself right too.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from retentiond.clock import LONDON
from retentiond.daemon.settings import JobSpec

__all__ = ["LONDON", "LondonCronTrigger", "is_repeated_wall_time", "make_trigger", "slot_date"]


def is_repeated_wall_time(instant: dt.datetime) -> bool:
    """True when ``instant`` is the second occurrence of a London wall-clock time (the hour
    after the autumn change)."""
    local = instant.astimezone(LONDON)
    if local.fold == 0:
        return False
    first = local.replace(fold=0)
    return first.utcoffset() != local.utcoffset()


def slot_date(instant: dt.datetime) -> dt.date:
    """The London calendar date a fire time belongs to."""
    return instant.astimezone(LONDON).date()


class LondonCronTrigger(BaseTrigger):  # type: ignore[misc]
    """A cron trigger in Europe/London whose times fire once each, DST or not."""

    __slots__ = ("expr", "inner")

    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.inner = CronTrigger.from_crontab(expr, timezone=LONDON)

    def get_next_fire_time(self, previous_fire_time: dt.datetime | None,
                           now: dt.datetime) -> dt.datetime | None:
        # Work in UTC: adding a timedelta to a London datetime is wall-clock arithmetic and
        # drops ``fold``, which would walk back into the repeated hour.
        after = now.astimezone(dt.UTC)
        previous = previous_fire_time
        for _ in range(48):  # at most a couple of repeated times per change; bounded anyway
            candidate: dt.datetime | None = self.inner.get_next_fire_time(previous, after)
            if candidate is None:
                return None
            candidate = candidate.astimezone(dt.UTC)
            if not is_repeated_wall_time(candidate):
                return candidate.astimezone(LONDON)
            previous = candidate
            after = candidate + dt.timedelta(seconds=1)
        return None

    def __str__(self) -> str:
        return f"cron[{self.expr}] Europe/London"

    def __repr__(self) -> str:
        return f"<LondonCronTrigger {self.expr!r}>"

    def __eq__(self, other: Any) -> bool:
        return isinstance(other, LondonCronTrigger) and other.expr == self.expr

    def __hash__(self) -> int:
        return hash(self.expr)


def make_trigger(spec: JobSpec) -> BaseTrigger:
    """The APScheduler trigger for a job's schedule."""
    if spec.cron is not None:
        return LondonCronTrigger(spec.cron)
    assert spec.interval_s is not None
    return IntervalTrigger(seconds=spec.interval_s, timezone=LONDON)
