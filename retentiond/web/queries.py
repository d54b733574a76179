"""The web app's read queries, kept in one place: the review queue, the dashboard, the audit.

Every query that returns records takes ``controller_id``: for a controller user it is theirs,
and rows of any other controller are never read (DESIGN.md section 6).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session

from retentiond.lifecycle.filters import Criteria, case_conditions
from retentiond.lifecycle.holds import covered_by
from retentiond.lifecycle.review import DisposalView
from retentiond.lifecycle.review import _views as disposal_views  # the lifecycle's one view builder
from retentiond.lifecycle.scopes import record_scope
from retentiond.lifecycle.sql import DONE_STATES
from retentiond.policy import ACTIONS, PolicySet
from retentiond.policy.engine import TERMINATION_RULE_ID
from retentiond.registry.models import (
    DISPOSAL_STATES,
    OPEN_STATES,
    AuditEvent,
    Controller,
    Disposal,
    Hold,
    Record,
)

SORTS = ("due_on", "id")
PAGE_SIZES = (25, 50, 100, 200)
#: The queue counts matching cases up to this many; past it, it says "more than".
COUNT_CAP = 10_000


class QueryError(ValueError):
    """A filter or cursor that cannot be used; the message names the field."""


@dataclass(frozen=True, kw_only=True)
class QueueFilter:
    """What the review queue shows: filters, sort order and page position."""

    state: str | None = "pending_review"
    controller: str | None = None
    category: str | None = None
    rule: str | None = None
    action: str | None = None
    due_from: dt.date | None = None
    due_to: dt.date | None = None
    #: Only cases of records their source no longer lists (retentiond/sources).
    gone_at_source: bool = False
    sort: str = "due_on"
    descending: bool = False
    limit: int = 50
    after: str | None = None
    before: str | None = None

    def __post_init__(self) -> None:
        if self.state is not None and self.state not in DISPOSAL_STATES:
            raise QueryError(f"state: {self.state!r} is not one of {', '.join(DISPOSAL_STATES)}")
        if self.sort not in SORTS:
            raise QueryError(f"sort: {self.sort!r} is not one of {', '.join(SORTS)}")
        if not 1 <= self.limit <= 500:
            raise QueryError("limit: must be from 1 to 500")
        if self.due_from and self.due_to and self.due_from > self.due_to:
            raise QueryError("due_to: must not be before due_from")

    def params(self, **changes: Any) -> dict[str, str]:
        """Query-string parameters that reproduce this filter (for links and exports)."""
        f = replace(self, **changes) if changes else self
        out = {
            "state": f.state or "", "controller": f.controller or "", "category": f.category or "",
            "rule": f.rule or "", "action": f.action or "",
            "due_from": f.due_from.isoformat() if f.due_from else "",
            "due_to": f.due_to.isoformat() if f.due_to else "",
            "gone_at_source": "1" if f.gone_at_source else "",
            "sort": f.sort, "order": "desc" if f.descending else "asc", "limit": str(f.limit),
            "after": f.after or "", "before": f.before or "",
        }
        return {k: v for k, v in out.items() if v or k == "state"}


def encode_cursor(sort: str, view: DisposalView) -> str:
    raw = f"{view.due_on.isoformat()}|{view.id}" if sort == "due_on" else str(view.id)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(sort: str, cursor: str) -> tuple[dt.date | None, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if sort == "due_on":
            day, _, ident = raw.partition("|")
            return dt.date.fromisoformat(day), int(ident)
        return None, int(raw)
    except (ValueError, UnicodeDecodeError):
        raise QueryError("cursor: not a page position this service gave out") from None


class _Position:
    """Page numbers from a page's position among the matching rows (keyset pages know
    where they start, not which page they are)."""

    start: int
    limit: int
    total: int

    @property
    def position_known(self) -> bool:
        """False past the first ``COUNT_CAP`` rows, where positions are not counted."""
        return self.start <= COUNT_CAP

    @property
    def page_no(self) -> int:
        return (self.start - 1) // self.limit + 1

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.limit))


@dataclass(frozen=True, kw_only=True)
class QueuePage(_Position):
    """One page of the queue, with cursors for the next and previous pages."""

    items: list[DisposalView]
    #: Matching cases, counted up to ``COUNT_CAP + 1`` (``total_capped`` then says so).
    total: int
    next_cursor: str | None
    prev_cursor: str | None
    total_capped: bool = False
    #: The position of the first item among the matching cases (1 for the first page), for
    #: "Cases 51 to 100 of 531"; counted up to the cap like ``total``.
    start: int = 1
    limit: int = 50


def _queue_conditions(f: QueueFilter, controller_id: int | None,
                      controller_ids: dict[str, int], scope: Any = None) -> list[Any]:
    where: list[Any] = [] if scope is None else [scope]
    # The controller's id looked up first (a tiny query), so the planner sees the id and can
    # start from the controller's records rather than walk every pending case.
    criteria = Criteria(state=f.state, controller=f.controller, category=f.category, rule=f.rule,
                        action=f.action, due_from=f.due_from, due_to=f.due_to)
    where += case_conditions(criteria, controller_ids.get(f.controller or "") or -1,
                             gone_at_source=f.gone_at_source)
    if controller_id is not None:
        where.append(Record.controller_id == controller_id)
    return where


def _needs_record(f: QueueFilter, controller_id: int | None, scope: Any = None) -> bool:
    return bool(f.category or f.controller or controller_id is not None or f.gone_at_source
                or scope is not None)


def queue_page(session: Session, f: QueueFilter, *, controller_id: int | None,
               reviewer: str | None = None) -> QueuePage:
    """One page of disposal cases, keyset-paged on (due_on, id) or id: as fast on page 2,000
    as on page 1, since no row before the page is read. ``reviewer``: only the cases in that
    user's review scope (``lifecycle/scopes.py``)."""
    controller_ids: dict[str, int] = {
        code: ident for code, ident in session.execute(
            select(Controller.code, Controller.id).where(Controller.code == f.controller))
    } if f.controller else {}
    scope = record_scope(session, reviewer)
    where = _queue_conditions(f, controller_id, controller_ids, scope)
    backwards = f.before is not None
    cursor = f.before if backwards else f.after
    # Going back is going forward in the opposite order, then turning the page round.
    descending = f.descending != backwards
    if cursor:
        day, ident = decode_cursor(f.sort, cursor)
        if f.sort == "due_on":
            assert day is not None
            # The redundant bound on due_on lets every planner start an index range scan at
            # the cursor instead of filtering all the rows before it.
            after = and_(Disposal.due_on >= day,
                         or_(Disposal.due_on > day, Disposal.id > ident))
            before = and_(Disposal.due_on <= day,
                          or_(Disposal.due_on < day, Disposal.id < ident))
        else:
            after, before = Disposal.id > ident, Disposal.id < ident
        where.append(before if descending else after)
    keys = [Disposal.due_on, Disposal.id] if f.sort == "due_on" else [Disposal.id]
    order = [k.desc() for k in keys] if descending else keys
    query = select(Disposal.id)
    if _needs_record(f, controller_id, scope):
        query = query.join(Record, Record.id == Disposal.record_id)
    ids = list(session.scalars(query.where(*where).order_by(*order).limit(f.limit + 1)))
    more = len(ids) > f.limit
    ids = ids[:f.limit]
    if backwards:
        ids.reverse()
    by_id = {v.id: v for v in disposal_views(session, select(Disposal).where(Disposal.id.in_(ids)))} \
        if ids else {}
    items = [by_id[i] for i in ids]
    matching = select(Disposal.id)
    if _needs_record(f, controller_id, scope):
        matching = matching.join(Record, Record.id == Disposal.record_id)
    # Counted up to a cap: an exact count of 100,000 cases costs more than the page itself,
    # and "more than 10,000" is all a reviewer needs to know.
    capped = (matching.where(*_queue_conditions(f, controller_id, controller_ids, scope))
              .limit(COUNT_CAP + 1).subquery())
    total = int(session.scalar(select(func.count()).select_from(capped)) or 0)
    has_next = more if not backwards else True
    has_prev = bool(cursor) if not backwards else more
    start = 1
    if items and has_prev:
        first = items[0]
        keys_first = ((Disposal.due_on, first.due_on), (Disposal.id, first.id)) \
            if f.sort == "due_on" else ((Disposal.id, first.id),)
        earlier = _before(keys_first, descending=f.descending)
        ahead = (matching.where(*_queue_conditions(f, controller_id, controller_ids, scope), earlier)
                 .limit(COUNT_CAP + 1).subquery())
        start = int(session.scalar(select(func.count()).select_from(ahead)) or 0) + 1
    return QueuePage(
        items=items, total=min(total, COUNT_CAP), total_capped=total > COUNT_CAP,
        next_cursor=encode_cursor(f.sort, items[-1]) if items and has_next else None,
        prev_cursor=encode_cursor(f.sort, items[0]) if items and has_prev else None,
        start=start, limit=f.limit,
    )


def _before(keys: tuple[tuple[Any, Any], ...], *, descending: bool) -> Any:
    """Rows that come before the given key values in the queue's order (keyset)."""
    column, value = keys[0]
    first = column > value if descending else column < value
    if len(keys) == 1:
        return first
    return or_(first, and_(column == value, _before(keys[1:], descending=descending)))


def queue_all(session: Session, f: QueueFilter, *, controller_id: int | None,
              limit: int = 100_000, reviewer: str | None = None) -> list[DisposalView]:
    """Every case the filter matches (for exports), read in pages of 500."""
    out: list[DisposalView] = []
    page = replace(f, after=None, before=None, limit=500)
    while len(out) < limit:
        result = queue_page(session, page, controller_id=controller_id, reviewer=reviewer)
        out.extend(result.items)
        if not result.next_cursor:
            break
        page = replace(page, after=result.next_cursor)
    return out[:limit]


def disposals_for_ids(session: Session, ids: list[int], *, controller_id: int | None,
                      reviewer: str | None = None) -> list[int]:
    """Those of ``ids`` the user may act on (a controller user: none of another's; a scoped
    reviewer: none outside their scope)."""
    if not ids:
        return []
    query = select(Disposal.id).where(Disposal.id.in_(ids))
    scope = record_scope(session, reviewer)
    if controller_id is not None or scope is not None:
        query = query.join(Record, Record.id == Disposal.record_id)
    if controller_id is not None:
        query = query.where(Record.controller_id == controller_id)
    if scope is not None:
        query = query.where(scope)
    return list(session.scalars(query))


def record_in_scope(session: Session, record_key: str, reviewer: str | None) -> bool:
    """Whether a scoped reviewer may see this record (an unscoped one: yes)."""
    scope = record_scope(session, reviewer)
    if scope is None:
        return True
    return session.scalar(select(Record.id).where(Record.record_key == record_key, scope)) \
        is not None


def record_keys_for(session: Session, disposal_ids: list[int]) -> list[str]:
    """The record keys of some disposal cases, once each."""
    return sorted(set(session.scalars(
        select(Record.record_key).join(Disposal, Disposal.record_id == Record.id)
        .where(Disposal.id.in_(disposal_ids)))))


def record_controller(session: Session, record_key: str) -> int | None:
    return session.scalar(select(Record.controller_id).where(Record.record_key == record_key))


def filter_choices(session: Session, policy: PolicySet, *,
                   controller_id: int | None) -> dict[str, list[str]]:
    """The values the queue's filters offer: from the policy and the small controllers table,
    never a scan of the (large) records or disposals tables."""
    controllers = select(Controller.code).order_by(Controller.code)
    if controller_id is not None:
        controllers = controllers.where(Controller.id == controller_id)
    return {
        "controllers": list(session.scalars(controllers)),
        "categories": sorted(policy.categories),
        "rules": sorted({r.id for r in policy.rules} | {TERMINATION_RULE_ID}),
        "actions": sorted(ACTIONS),
    }


# --- dashboard ------------------------------------------------------------------------------

@dataclass(kw_only=True)
class Dashboard:
    """The numbers on the dashboard."""

    as_of: dt.date
    by_state: dict[str, int]
    overdue: int
    overdue_days: int
    oldest_overdue: list[DisposalView]
    failed: list[DisposalView]
    needs_attention: int
    active_holds: int
    due_by_month: dict[str, dict[str, int]] = field(default_factory=dict)


def add_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def dashboard(session: Session, *, as_of: dt.date, overdue_days: int,
              controller_id: int | None, reviewer: str | None = None) -> Dashboard:
    scope = [Record.controller_id == controller_id] if controller_id is not None else []
    review_scope = record_scope(session, reviewer)
    if review_scope is not None:
        scope.append(review_scope)
    counts = session.execute(
        select(Disposal.state, func.count()).join(Record, Record.id == Disposal.record_id)
        .where(*scope).group_by(Disposal.state)
    ).all()
    by_state = {state: 0 for state in DISPOSAL_STATES}
    by_state.update({state: int(n) for state, n in counts})
    limit = as_of - dt.timedelta(days=overdue_days)
    overdue_where = [Disposal.state.in_(OPEN_STATES), Disposal.due_on < limit, *scope]
    overdue = int(session.scalar(
        select(func.count()).select_from(Disposal).join(Record, Record.id == Disposal.record_id)
        .where(*overdue_where)) or 0)

    def views(where: list[Any], order: Any) -> list[DisposalView]:
        ids = list(session.scalars(select(Disposal.id).join(Record, Record.id == Disposal.record_id)
                                   .where(*where).order_by(order, Disposal.id).limit(10)))
        if not ids:
            return []
        got = {v.id: v for v in disposal_views(session, select(Disposal).where(Disposal.id.in_(ids)))}
        return [got[i] for i in ids]

    oldest = views(overdue_where, Disposal.due_on)
    failed = views([Disposal.state == "failed", *scope], Disposal.updated_at.desc())
    attention = int(session.scalar(select(func.count()).select_from(Record)
                                   .where(Record.needs_attention.is_not(None), *scope)) or 0)
    holds = 0 if controller_id is not None else int(session.scalar(
        select(func.count()).select_from(Hold).where(Hold.lifted_at.is_(None))) or 0)
    start, end = as_of, add_months(as_of, 24)
    rows = session.execute(
        select(Record.due_on, Record.category, func.count())
        .where(Record.due_on >= start, Record.due_on < end, *scope,
               ~Record.id.in_(select(Disposal.record_id).where(Disposal.state.in_(DONE_STATES))))
        .group_by(Record.due_on, Record.category)
    ).all()
    months: dict[str, Counter[str]] = {
        add_months(as_of, i).strftime("%Y-%m"): Counter() for i in range(24)
    }
    for due_on, category, n in rows:
        assert due_on is not None  # bounded by the WHERE clause
        months.setdefault(due_on.strftime("%Y-%m"), Counter())[category] += int(n)
    return Dashboard(
        as_of=as_of, by_state=by_state, overdue=overdue, overdue_days=overdue_days,
        oldest_overdue=oldest, failed=failed, needs_attention=attention, active_holds=holds,
        due_by_month={m: dict(c) for m, c in months.items()},
    )


def notices(session: Session, *, controller_id: int | None) -> dict[str, int]:
    """Controller notices not delivered: still being tried (pending) and given up (dead)."""
    from retentiond.registry.models import Notification

    query = select(Notification.state, func.count()).where(
        Notification.state.in_(("pending", "dead"))).group_by(Notification.state)
    if controller_id is not None:
        query = query.where(Notification.controller_id == controller_id)
    counts = {"pending": 0, "dead": 0}
    counts.update({state: int(n) for state, n in session.execute(query)})
    return counts


# --- holds ----------------------------------------------------------------------------------

def hold_scope(session: Session, hold_id: int) -> tuple[str, str] | None:
    row = session.execute(select(Hold.scope_kind, Hold.scope_value).where(Hold.id == hold_id)).first()
    return (row[0], row[1]) if row else None


def records_covered(session: Session, kind: str, value: str,
                    criteria: dict[str, Any] | None = None, *,
                    limit: int = 100) -> list[dict[str, Any]]:
    """The first records in one hold's scope (the holds page's 'what it covers'); a filter
    hold's ``criteria`` are the ones it keeps."""
    rows = session.execute(
        select(Record.record_key, Record.category, Controller.code, Record.due_on)
        .join(Controller, Controller.id == Record.controller_id)
        .where(covered_by(kind, value, criteria)).order_by(Record.record_key).limit(limit)
    ).all()
    return [{"record_id": k, "category": c, "controller": code,
             "due_on": d.isoformat() if d else None} for k, c, code, d in rows]


# --- audit ----------------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class AuditFilter:
    """Search of the audit trail: newest first, keyset-paged on id."""

    kind: str | None = None
    actor: str | None = None
    entity: str | None = None
    entity_id: str | None = None
    since: dt.date | None = None
    until: dt.date | None = None
    before_id: int | None = None
    after_id: int | None = None
    limit: int = 100


def _audit_where(f: AuditFilter) -> list[Any]:
    from retentiond.clock import LONDON

    where: list[Any] = []
    if f.kind:
        where.append(AuditEvent.kind == f.kind)
    if f.actor:
        where.append(AuditEvent.actor == f.actor)
    if f.entity:
        where.append(AuditEvent.entity == f.entity)
    if f.entity_id:
        where.append(AuditEvent.entity_id == f.entity_id)
    if f.since:
        where.append(AuditEvent.occurred_at >= dt.datetime.combine(f.since, dt.time(), LONDON))
    if f.until:
        where.append(AuditEvent.occurred_at < dt.datetime.combine(
            f.until + dt.timedelta(days=1), dt.time(), LONDON))
    return where


def audit_events(session: Session, f: AuditFilter) -> list[AuditEvent]:
    """Matching events, newest first, before ``before_id`` (or, going back a page, the
    ``limit`` oldest after ``after_id``, still newest first)."""
    where = _audit_where(f)
    if f.after_id:
        rows = list(session.scalars(select(AuditEvent).where(*where, AuditEvent.id > f.after_id)
                                    .order_by(AuditEvent.id).limit(f.limit)))
        return rows[::-1]
    if f.before_id:
        where.append(AuditEvent.id < f.before_id)
    return list(session.scalars(select(AuditEvent).where(*where)
                                .order_by(AuditEvent.id.desc()).limit(f.limit)))


@dataclass(frozen=True, kw_only=True)
class AuditPage(_Position):
    """A page of the audit trail with where it sits among the matching events."""

    items: list[AuditEvent]
    total: int
    total_capped: bool
    start: int
    limit: int
    newer: bool
    older: bool


def audit_page(session: Session, f: AuditFilter) -> AuditPage:
    """``audit_events`` with counts (each up to ``COUNT_CAP``): the trail can hold millions."""
    items = audit_events(session, f)
    where = _audit_where(f)

    def count(*extra: Any) -> int:
        capped = select(AuditEvent.id).where(*where, *extra).limit(COUNT_CAP + 1).subquery()
        return int(session.scalar(select(func.count()).select_from(capped)) or 0)

    total = count()
    newer = count(AuditEvent.id > items[0].id) if items else 0
    older = bool(items) and count(AuditEvent.id < items[-1].id) > 0
    return AuditPage(items=items, total=min(total, COUNT_CAP), total_capped=total > COUNT_CAP,
                     start=newer + 1, limit=f.limit, newer=newer > 0, older=older)


def audit_kinds(session: Session) -> list[str]:
    return sorted(set(session.scalars(select(AuditEvent.kind).distinct())))


def record_history(session: Session, record_key: str) -> list[AuditEvent]:
    """Events about the record itself (views, imports); disposal events come from explain."""
    return list(session.scalars(
        select(AuditEvent).where(AuditEvent.entity == "record", AuditEvent.entity_id == record_key)
        .order_by(AuditEvent.id)))
