"""Preview a changed policy pack: how many records it would make due earlier or later, by
category, computed with ``decide`` over the registry and applied to nothing."""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select

from retentiond.lifecycle.context import Context
from retentiond.lifecycle.recompute import fact_query, facts_from_row
from retentiond.policy import PolicySet, decide_safely, load_policy_set
from retentiond.registry.models import Record

BATCH = 5000
#: Records listed behind each category's counts (the counts themselves cover every record).
EXAMPLES = 200


@dataclass(frozen=True, kw_only=True)
class RecordMove:
    """One record whose due date the changed policy would move."""

    record_id: str
    change: str  # earlier, later, newly_never_due, newly_dated
    due_on: dt.date | None
    proposed_due_on: dt.date | None
    due_now: bool

    def as_json(self) -> dict[str, Any]:
        return {"record_id": self.record_id, "change": self.change,
                "due_on": self.due_on.isoformat() if self.due_on else None,
                "proposed_due_on": self.proposed_due_on.isoformat() if self.proposed_due_on
                else None, "due_now": self.due_now}


@dataclass(kw_only=True)
class CategoryMove:
    """What the changed policy would do to one category's records."""

    category: str
    records: int = 0
    earlier: int = 0
    later: int = 0
    unchanged: int = 0
    newly_never_due: int = 0
    newly_dated: int = 0
    newly_due_now: int = 0
    #: The first ``EXAMPLES`` records that would move, by record id.
    examples: list[RecordMove] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k != "examples"}
        out["records_moved"] = [m.as_json() for m in self.examples]
        return out


@dataclass(kw_only=True)
class PolicyPreview:
    """The whole preview: the two versions and the moves of every changed category."""

    current_version: str
    proposed_version: str
    as_of: dt.date
    changed_categories: list[str]
    moves: list[CategoryMove] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"current_version": self.current_version, "proposed_version": self.proposed_version,
                "as_of": self.as_of.isoformat(), "changed_categories": self.changed_categories,
                "moves": [m.as_json() for m in self.moves]}


def proposed_policy(current: PolicySet, pack_text: str) -> PolicySet:
    """The policy set with ``pack_text`` in place of the pack of the same name (or added).
    Raises ``PolicyError`` naming the problems of a bad pack."""
    with tempfile.TemporaryDirectory(prefix="retentiond-preview-") as tmp:
        path = Path(tmp) / "proposed.toml"
        path.write_text(pack_text, encoding="utf-8")
        alone = load_policy_set([path])
        name = alone.packs[0].name
        others = [p.path for p in current.packs if p.name != name]
        return load_policy_set([*others, path])


def preview(ctx: Context, proposed: PolicySet) -> PolicyPreview:
    """Compare every record of a category whose rules differ under ``proposed``."""
    current, today = ctx.policy, ctx.clock.today()
    with ctx.sessions() as session:
        categories = set(session.scalars(select(Record.category).distinct()))
    changed = sorted(c for c in categories | current.categories | proposed.categories
                     if current.category_digest(c) != proposed.category_digest(c))
    result = PolicyPreview(current_version=current.version, proposed_version=proposed.version,
                           as_of=today, changed_categories=changed)
    for category in changed:
        move = CategoryMove(category=category)
        last = 0
        while True:
            with ctx.sessions() as session:
                rows = session.execute(
                    fact_query().add_columns(Record.record_key)
                    .where(Record.category == category, Record.id > last)
                    .order_by(Record.id).limit(BATCH)).all()
            if not rows:
                break
            for row in rows:
                facts = facts_from_row(row)
                old, new = decide_safely(current, facts).due_on, decide_safely(proposed, facts).due_on
                move.records += 1
                if old == new:
                    move.unchanged += 1
                    continue
                if new is None:
                    change = "newly_never_due"
                elif old is None:
                    change = "newly_dated"
                else:
                    change = "earlier" if new < old else "later"
                setattr(move, change, getattr(move, change) + 1)
                due_now = new is not None and new <= today and (old is None or old > today)
                move.newly_due_now += due_now
                if len(move.examples) < EXAMPLES:
                    move.examples.append(RecordMove(record_id=row[-1], change=change,
                                                    due_on=old, proposed_due_on=new,
                                                    due_now=due_now))
            last = rows[-1][0]
        result.moves.append(move)
    return result
