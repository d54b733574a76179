"""The clock seam: code outside ``daemon/`` and ``cli/`` never reads the time itself."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Protocol
from zoneinfo import ZoneInfo

LONDON = ZoneInfo("Europe/London")


class Clock(Protocol):
    """Where the time comes from."""

    def now(self) -> dt.datetime:
        """The current instant, an aware UTC datetime."""
        ...

    def today(self) -> dt.date:
        """Today's calendar date in Europe/London."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    def today(self) -> dt.date:
        return dt.datetime.now(LONDON).date()


@dataclass
class FixedClock:
    """A clock that says what it is told (tests, and ``--as-of``)."""

    instant: dt.datetime

    def __post_init__(self) -> None:
        if self.instant.tzinfo is None:
            raise ValueError("FixedClock needs an aware datetime")

    def now(self) -> dt.datetime:
        return self.instant.astimezone(dt.UTC)

    def today(self) -> dt.date:
        return self.instant.astimezone(LONDON).date()
