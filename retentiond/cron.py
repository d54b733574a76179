"""Schedules on the London wall clock: cron expressions checked and fired once each, daylight
saving or not. The daemon's jobs and the ``[sources.NAME]`` schedules both use them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.cron import CronTrigger

from retentiond.clock import LONDON
from retentiond.config import ConfigError


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


def check_cron(expr: str, where: str) -> str:
    """Refuse what APScheduler would misread. Its ``from_crontab`` counts days of the week
    from Monday = 0, cron from Sunday = 0: a number there would silently run on the wrong day."""
    fields = expr.split()
    if len(fields) != 5:
        raise ConfigError(f"{where}: {expr!r} is not a cron expression of five fields "
                          "(minute hour day month day-of-week)")
    if any(ch.isdigit() for ch in fields[4]):
        raise ConfigError(f"{where}: day of week {fields[4]!r}: use names (mon, tue, ... sun), "
                          "not numbers, which mean different days in cron and in APScheduler")
    try:
        CronTrigger.from_crontab(expr, timezone=LONDON)
    except ValueError as exc:
        raise ConfigError(f"{where}: {expr!r} is not a valid cron expression: {exc}") from exc
    return expr
