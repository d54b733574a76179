"""Forecast: what becomes due in a window, with totals by month and category."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.registry.models import Controller, Record


@dataclass(frozen=True, kw_only=True, slots=True)
class ForecastItem:
    """One record that falls due in the window."""

    record_id: str
    due_on: dt.date
    action: str
    rule: str
    category: str
    controller: str

    def as_json(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "due_on": self.due_on.isoformat(),
                "action": self.action, "rule": self.rule, "category": self.category,
                "controller": self.controller}


@dataclass(kw_only=True)
class ForecastTotals:
    """Running totals, filled in as the items stream past."""

    total: int = 0
    by_month: Counter[str] = field(default_factory=Counter)
    by_category: Counter[str] = field(default_factory=Counter)
    by_month_and_category: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, item: ForecastItem) -> None:
        month = item.due_on.strftime("%Y-%m")
        self.total += 1
        self.by_month[month] += 1
        self.by_category[item.category] += 1
        self.by_month_and_category[(month, item.category)] += 1

    def as_json(self) -> dict[str, Any]:
        nested: dict[str, dict[str, int]] = {}
        for (month, category), n in sorted(self.by_month_and_category.items()):
            nested.setdefault(month, {})[category] = n
        return {"total": self.total, "by_month": dict(sorted(self.by_month.items())),
                "by_category": dict(sorted(self.by_category.items())),
                "by_month_and_category": nested}


def forecast(ctx: Context, *, as_of: dt.date, until: dt.date,
             totals: ForecastTotals) -> Iterator[ForecastItem]:
    """Stream every record due in ``[as_of, until]`` in due-date order, adding to ``totals``.

    Uses the stored, indexed due dates; run ``evaluate`` (or ``recompute``) after a policy
    change so they are current.
    """
    if until < as_of:
        raise LifecycleError(f"--until {until} is before --as-of {as_of}")
    with ctx.sessions() as session:
        rows = session.execute(
            select(Record.record_key, Record.due_on, Record.due_action, Record.due_rule,
                   Record.category, Controller.code)
            .join(Controller, Controller.id == Record.controller_id)
            .where(Record.due_on >= as_of, Record.due_on <= until)
            .order_by(Record.due_on, Record.record_key)
            .execution_options(yield_per=2000)
        )
        for key, due_on, action, rule, category, controller in rows:
            assert due_on is not None  # the WHERE clause bounds it
            item = ForecastItem(record_id=key, due_on=due_on, action=action or "", rule=rule or "",
                                category=category, controller=controller)
            totals.add(item)
            yield item
