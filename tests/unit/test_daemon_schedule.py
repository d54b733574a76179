"""The nightly slot across the clock changes of 2027 (28 March and 31 October)."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import pytest

from retentiond.clock import LONDON
from retentiond.daemon.schedule import LondonCronTrigger, is_repeated_wall_time, slot_date

UTC = dt.UTC


def fires(expr: str, start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Every fire time of ``expr`` in [start, end), as the scheduler would ask for them."""
    trigger = LondonCronTrigger(expr)
    out: list[dt.datetime] = []
    previous, now = None, start
    while True:
        nxt = trigger.get_next_fire_time(previous, now)
        assert nxt is not None
        if nxt >= end:
            return out
        assert not out or nxt > out[-1], "fire times must strictly increase"
        out.append(nxt)
        previous, now = nxt, nxt.astimezone(UTC)


#: From noon UTC two days before each change to noon UTC three days after it.
SPRING = (dt.datetime(2027, 3, 26, 12, tzinfo=UTC), dt.datetime(2027, 3, 31, 12, tzinfo=UTC))
AUTUMN = (dt.datetime(2027, 10, 29, 12, tzinfo=UTC), dt.datetime(2027, 11, 3, 12, tzinfo=UTC))


@pytest.mark.parametrize("window", [SPRING, AUTUMN], ids=["march", "october"])
@pytest.mark.parametrize("expr", ["30 3 * * *", "30 1 * * *", "0 2 * * *", "59 0 * * *",
                                  "0 1 * * *"])
def test_a_daily_time_fires_exactly_once_per_london_date(expr, window):
    """Whether the clocks go forward or back, each London date gets exactly one run."""
    per_day = Counter(slot_date(t) for t in fires(expr, *window))
    first = window[0].date() + dt.timedelta(days=1)
    assert per_day == {first + dt.timedelta(days=i): 1 for i in range(5)}


@pytest.mark.parametrize(("day", "utc_hour"), [
    (dt.date(2027, 3, 27), 3),   # Saturday: GMT
    (dt.date(2027, 3, 28), 2),   # the clocks went forward at 01:00 UTC: BST from 03:30
    (dt.date(2027, 3, 29), 2),
    (dt.date(2027, 10, 30), 2),  # Saturday: BST
    (dt.date(2027, 10, 31), 3),  # the clocks went back at 01:00 UTC: GMT again
    (dt.date(2027, 11, 1), 3),
])
def test_default_evaluation_is_at_0330_london_wall_clock(day, utc_hour):
    """03:30 in London is 02:30 UTC in summer time and 03:30 UTC in winter."""
    times = fires("30 3 * * *", dt.datetime(2027, 3, 20, tzinfo=UTC), dt.datetime(2027, 11, 5, tzinfo=UTC))
    [hit] = [t for t in times if slot_date(t) == day]
    assert hit.astimezone(LONDON).strftime("%H:%M") == "03:30"
    assert hit.astimezone(UTC).hour == utc_hour and hit.astimezone(UTC).minute == 30


def test_a_time_the_spring_change_skips_runs_just_after_the_gap():
    """01:30 does not exist on 28 March 2027; the run happens at the first instant after it."""
    times = fires("30 1 * * *", *SPRING)
    [hit] = [t for t in times if slot_date(t) == dt.date(2027, 3, 28)]
    assert hit.astimezone(UTC) == dt.datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    assert hit.astimezone(LONDON).strftime("%H:%M %Z") == "02:30 BST"


def test_a_time_the_autumn_change_repeats_runs_at_its_first_occurrence_only():
    """01:30 happens twice on 31 October 2027 (BST, then GMT); only the first fires."""
    times = fires("30 1 * * *", *AUTUMN)
    hits = [t for t in times if slot_date(t) == dt.date(2027, 10, 31)]
    assert [t.astimezone(UTC) for t in hits] == [dt.datetime(2027, 10, 31, 0, 30, tzinfo=UTC)]


def test_hourly_cron_through_the_repeated_hour_skips_only_the_repeat():
    """An hourly job over the autumn change runs at each distinct wall-clock time once."""
    times = fires("30 * * * *", dt.datetime(2027, 10, 30, 23, 0, tzinfo=UTC),
                  dt.datetime(2027, 10, 31, 4, 0, tzinfo=UTC))
    walls = [t.astimezone(LONDON).strftime("%H:%M") for t in times]
    assert walls == ["00:30", "01:30", "02:30", "03:30"]


def test_scheduler_started_inside_the_repeated_hour_waits_for_the_next_day():
    """Started at 01:45 GMT on 31 October, after 01:30 BST, the next 01:30 is 1 November."""
    # The daemon's start-up catch-up covers an evaluation missed that way.
    trigger = LondonCronTrigger("30 1 * * *")
    nxt = trigger.get_next_fire_time(None, dt.datetime(2027, 10, 31, 1, 45, tzinfo=UTC))
    assert nxt.astimezone(UTC) == dt.datetime(2027, 11, 1, 1, 30, tzinfo=UTC)


@pytest.mark.parametrize(("instant", "repeated"), [
    (dt.datetime(2027, 10, 31, 0, 30, tzinfo=UTC), False),  # 01:30 BST, first
    (dt.datetime(2027, 10, 31, 1, 30, tzinfo=UTC), True),   # 01:30 GMT, the repeat
    (dt.datetime(2027, 10, 31, 2, 30, tzinfo=UTC), False),
    (dt.datetime(2027, 3, 28, 1, 30, tzinfo=UTC), False),
])
def test_repeated_wall_time(instant, repeated):
    """Only the second pass through the autumn hour counts as repeated."""
    assert is_repeated_wall_time(instant) is repeated


@pytest.mark.parametrize(("instant", "day"), [
    (dt.datetime(2027, 3, 27, 23, 30, tzinfo=UTC), dt.date(2027, 3, 27)),   # 23:30 GMT
    (dt.datetime(2027, 3, 28, 23, 30, tzinfo=UTC), dt.date(2027, 3, 29)),   # 00:30 BST
    (dt.datetime(2027, 10, 30, 23, 30, tzinfo=UTC), dt.date(2027, 10, 31)),  # 00:30 BST
    (dt.datetime(2027, 10, 31, 23, 30, tzinfo=UTC), dt.date(2027, 10, 31)),  # 23:30 GMT
])
def test_slot_date_is_the_london_calendar_date(instant, day):
    """Late evening UTC in summer is already the next day in London."""
    assert slot_date(instant) == day
