"""Calendar arithmetic for retention periods (DESIGN.md section 3, rules 1 and 2)."""

from __future__ import annotations

import datetime as dt

from dateutil.relativedelta import relativedelta

from retentiond.policy.model import ROUNDINGS, Period


def add_period(anchor: dt.date, period: Period, *, missing_day: str = "next_day") -> dt.date:
    """``anchor`` plus a calendar period.

    When the anniversary's day does not exist in the target month (29 February in a common
    year, 31 April), ``relativedelta`` clips to the month's last day. With ``missing_day =
    "next_day"`` we take the day after instead, so that a person born on 29 February 2004 turns
    25 on 1 March 2029 and nothing is disposed of a day early.
    """
    shifted = anchor + relativedelta(years=period.years, months=period.months)
    if missing_day == "next_day" and shifted.day < anchor.day:
        shifted += dt.timedelta(days=1)
    elif missing_day not in ("next_day", "last_day"):
        raise ValueError(f"unknown missing_day {missing_day!r}")
    return shifted + dt.timedelta(days=period.days)


def round_up(day: dt.date, round_to: str) -> dt.date:
    """Move ``day`` forward to the end of its academic, financial or calendar year."""
    month, dom = ROUNDINGS[round_to]
    end = dt.date(day.year, month, dom)
    return end if end >= day else dt.date(day.year + 1, month, dom)


def age_on(date_of_birth: dt.date, on: dt.date) -> int:
    """Whole years of age on a date, counting a 29 February birthday as reached on 1 March."""
    years = on.year - date_of_birth.year
    if years > 0 and on < add_period(date_of_birth, Period(years=years)):
        years -= 1
    return years
