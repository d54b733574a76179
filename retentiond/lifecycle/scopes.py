"""Review groups and scopes: who may review which cases.

A *review group* (``review_groups``) is a named set of web users (``group_members``); a staged
rule's stage names the group whose members approve it. A *scope* (``review_scopes``) limits a
group or a user to some controllers and categories: each row names a controller code, a
category, or both (None for any), and a case is in scope if any row matches its record.

A user's scope (the rule written in ``docs/web.md``, "Scoped reviewers"):

- a user is **unscoped** (sees and acts on every case, as before scopes existed) when neither
  they nor any group they belong to has a scope row;
- otherwise they are **scoped**, to the union of their own rows and the rows of every group
  they belong to. A group with no rows adds nothing: it does not make a scoped member
  unscoped (membership of a group is about stages; only rows widen what one sees).

So adding a row anywhere narrows a user who had none, and adding a row to a user already
scoped widens them. Scopes limit review (seeing and acting on cases); they are applied on top
of a user's roles and, for a ``controller`` user, on top of their controller.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, false, or_, select, true
from sqlalchemy.orm import Session

from retentiond.registry.models import Controller, GroupMember, Record, ReviewScope
from retentiond.usernames import GROUP_NAME_LENGTH, check_group_name

__all__ = ["GROUP_NAME_LENGTH", "check_group_name", "groups_of", "in_scope", "record_scope",
           "rows_clause", "scope_clause", "scope_rows"]


def groups_of(session: Session, actor: str) -> frozenset[str]:
    """The review groups ``actor`` (a web user's name as stored) is a member of."""
    return frozenset(session.scalars(
        select(GroupMember.group_name).where(GroupMember.username == actor)))


def scope_rows(session: Session, actor: str) -> list[tuple[str | None, str | None]]:
    """(controller, category) of every scope row that applies to ``actor``: their own and
    their groups'. Empty: unscoped."""
    groups = groups_of(session, actor)
    principal = and_(ReviewScope.principal_kind == "user", ReviewScope.principal == actor)
    if groups:
        principal = or_(principal, and_(ReviewScope.principal_kind == "group",
                                         ReviewScope.principal.in_(sorted(groups))))
    return [(c, k) for c, k in session.execute(
        select(ReviewScope.controller, ReviewScope.category).where(principal)
        .order_by(ReviewScope.id))]


def rows_clause(rows: list[tuple[str | None, str | None]]) -> ColumnElement[bool]:
    """The condition over ``Record`` joined with ``Controller`` that scope ``rows`` allow."""
    if not rows:
        return false()
    parts: list[ColumnElement[bool]] = []
    for controller, category in dict.fromkeys(rows):
        conds: list[ColumnElement[bool]] = []
        if controller is not None:
            conds.append(Controller.code == controller)
        if category is not None:
            conds.append(Record.category == category)
        parts.append(and_(*conds) if conds else true())
    return or_(*parts)


def scope_clause(session: Session, actor: str) -> ColumnElement[bool] | None:
    """None when ``actor`` is unscoped; else a condition over ``Record`` joined with
    ``Controller`` (``select(Disposal).join(Record, ...).join(Controller, ...)``) true for the
    cases in their scope."""
    rows = scope_rows(session, actor)
    return None if not rows else rows_clause(rows)


def record_scope(session: Session, actor: str | None) -> ColumnElement[bool] | None:
    """``scope_clause`` as a condition over ``Record`` alone (controller codes looked up
    first), for queries that do not join ``Controller``. None: unscoped (or no actor)."""
    if actor is None:
        return None
    rows = scope_rows(session, actor)
    if not rows:
        return None
    codes = sorted({c for c, _ in rows if c is not None})
    ids = {code: ident for code, ident in session.execute(
        select(Controller.code, Controller.id).where(Controller.code.in_(codes)))}
    parts: list[ColumnElement[bool]] = []
    for controller, category in dict.fromkeys(rows):
        conds: list[ColumnElement[bool]] = []
        if controller is not None:
            conds.append(Record.controller_id == ids.get(controller, -1))
        if category is not None:
            conds.append(Record.category == category)
        parts.append(and_(*conds) if conds else true())
    return or_(*parts)


def in_scope(rows: list[tuple[str | None, str | None]], controller: str,
             category: str) -> bool:
    """Whether a record of ``controller`` (code) and ``category`` is in scope ``rows`` (empty:
    unscoped, so yes). The Python twin of ``rows_clause``."""
    if not rows:
        return True
    return any((c is None or c == controller) and (k is None or k == category)
               for c, k in rows)
