"""Calendar arithmetic for retention periods (DESIGN.md section 3, rules 1 and 2)."""

from __future__ import annotations

import datetime as dt

from dateutil.relativedelta import relativedelta

from retentiond.policy.model import ROUNDINGS, Period


class DateOutOfRange(ValueError):
    """Date arithmetic went past the last (or before the first) calendar date this service can
    represent (``datetime.date``: years 1 to 9999). An open-ended marker such as 9999-12-31
    plus a period lands here; the engine makes such a record never due, needing attention."""


def _beyond(what: str) -> DateOutOfRange:
    return DateOutOfRange(f"{what} falls after {dt.date.max.isoformat()}, the last date this "
                          "service can hold")


def add_days(day: dt.date, days: int) -> dt.date:
    """``day`` plus whole days; ``DateOutOfRange`` past the calendar's end."""
    try:
        return day + dt.timedelta(days=days)
    except OverflowError:
        raise _beyond(f"{day.isoformat()} plus {days} day(s)") from None


def add_period(anchor: dt.date, period: Period, *, missing_day: str = "next_day") -> dt.date:
    """``anchor`` plus a calendar period.

    When the anniversary's day does not exist in the target month (29 February in a common
    year, 31 April), ``relativedelta`` clips to the month's last day. With ``missing_day =
    "next_day"`` we take the day after instead, so that a person born on 29 February 2004 turns
    25 on 1 March 2029 and nothing is disposed of a day early.
    """
    if missing_day not in ("next_day", "last_day"):
        raise ValueError(f"unknown missing_day {missing_day!r}")
    try:
        shifted = anchor + relativedelta(years=period.years, months=period.months)
    except (ValueError, OverflowError):
        # relativedelta says "year 10005 is out of range": name the date and the period.
        raise _beyond(f"{anchor.isoformat()} plus {period.describe()}") from None
    if missing_day == "next_day" and shifted.day < anchor.day:
        shifted = add_days(shifted, 1)
    return add_days(shifted, period.days)


def longer_than(period: Period, years: int) -> bool:
    """True when ``period`` is longer than ``years`` calendar years (from any start date)."""
    if period.years > years or period.months > 12 * years or period.days > 366 * years:
        return True
    start = dt.date(2000, 1, 1)
    return add_period(start, period, missing_day="last_day") > start.replace(year=2000 + years)


def round_up(day: dt.date, round_to: str) -> dt.date:
    """Move ``day`` forward to the end of its academic, financial or calendar year."""
    month, dom = ROUNDINGS[round_to]
    end = dt.date(day.year, month, dom)
    if end >= day:
        return end
    if day.year == dt.date.max.year:
        raise _beyond(f"the {round_to.replace('_', ' ')} after {day.isoformat()}")
    return dt.date(day.year + 1, month, dom)


def age_on(date_of_birth: dt.date, on: dt.date) -> int:
    """Whole years of age on a date, counting a 29 February birthday as reached on 1 March."""
    years = on.year - date_of_birth.year
    if years > 0 and on < add_period(date_of_birth, Period(years=years)):
        years -= 1
    return years
