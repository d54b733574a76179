"""When jobs fire: cron in Europe/London wall-clock time that a DST change never doubles.

APScheduler 3.11's ``CronTrigger`` fires twice for a wall-clock time that the autumn change
repeats (01:30 on the last Sunday of October happens at 00:30 and 01:30 UTC), and moves a
time that the spring change skips to the first instant after the gap. ``LondonCronTrigger``
keeps the second behaviour (nothing is skipped) and removes the first: a repeated wall-clock
time fires at its first occurrence only. The nightly evaluation is also guarded in the
database, once per London date (``slots.py``); this makes the timer itself right too.
"""

from __future__ import annotations

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger

from retentiond.clock import LONDON
from retentiond.cron import LondonCronTrigger, is_repeated_wall_time, slot_date
from retentiond.daemon.settings import JobSpec

__all__ = ["LONDON", "LondonCronTrigger", "is_repeated_wall_time", "make_trigger", "slot_date"]


def make_trigger(spec: JobSpec) -> BaseTrigger:
    """The APScheduler trigger for a job's schedule."""
    if spec.cron is not None:
        return LondonCronTrigger(spec.cron)
    assert spec.interval_s is not None
    return IntervalTrigger(seconds=spec.interval_s, timezone=LONDON)
