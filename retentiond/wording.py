"""Dates in words, one way everywhere (pages, saved filter descriptions, emails): GOV.UK style,
``2029-03-01`` -> ``1 March 2029``, no leading zero, the month in words."""

from __future__ import annotations

import datetime as dt


def long_date(value: dt.date | str | None) -> str:
    """``2029-03-01`` (a date or its ISO text) -> ``1 March 2029``; ``""`` for nothing."""
    if value is None or value == "":
        return ""
    day = dt.date.fromisoformat(value) if isinstance(value, str) else value
    return f"{day.day} {day.strftime('%B %Y')}"
