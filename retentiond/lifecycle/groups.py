"""Managing review groups, their members, and the review scopes of groups and users.

Every change is audited (entity ``group`` or ``user``) in the transaction that makes it. Who
may call these is the caller's business: the command line (an administrator's machine) and
the ``manage_users`` permission on the web. The rules a scope follows are in
``lifecycle/scopes.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from retentiond.audit import record_event
from retentiond.lifecycle.context import Context, LifecycleError, required_text
from retentiond.registry.db import write_transaction
from retentiond.registry.models import (
    Controller,
    Disposal,
    GroupMember,
    Record,
    ReviewGroup,
    ReviewScope,
    WebUser,
)
from retentiond.usernames import UsernameError, check_group_name


@dataclass(frozen=True, kw_only=True)
class GroupView:
    """A review group as commands and pages show it."""

    name: str
    label: str
    members: tuple[str, ...]
    scope: tuple[tuple[str | None, str | None], ...]

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "members": list(self.members),
                "scope": [{"controller": c, "category": k} for c, k in self.scope]}


def _name(raw: str) -> str:
    try:
        return check_group_name(raw)
    except UsernameError as exc:
        raise LifecycleError(f"group: {exc}") from None


def _group(session: Session, raw: str, *, lock: bool = False) -> ReviewGroup:
    name = _name(raw)
    group = session.get(ReviewGroup, name, with_for_update=lock)
    if group is None:
        raise LifecycleError(f"group: there is no review group {name!r}")
    return group


def _rows(session: Session, kind: str, principal: str) -> tuple[tuple[str | None, str | None], ...]:
    return tuple((c, k) for c, k in session.execute(
        select(ReviewScope.controller, ReviewScope.category)
        .where(ReviewScope.principal_kind == kind, ReviewScope.principal == principal)
        .order_by(ReviewScope.id)))


def _view(session: Session, group: ReviewGroup) -> GroupView:
    members = tuple(session.scalars(select(GroupMember.username)
                                    .where(GroupMember.group_name == group.name)
                                    .order_by(GroupMember.username)))
    return GroupView(name=group.name, label=group.label, members=members,
                     scope=_rows(session, "group", group.name))


def add_group(ctx: Context, name: str, *, label: str | None = None) -> GroupView:
    """Make a review group (``name`` checked like a user name, stored lower-case)."""
    name = _name(name)
    label = required_text(label or name, "label: a group needs a label")
    if len(label) > 200:
        raise LifecycleError("label: at most 200 characters")
    with write_transaction(ctx.sessions) as session:
        if session.get(ReviewGroup, name) is not None:
            raise LifecycleError(f"group: a review group {name!r} already exists")
        group = ReviewGroup(name=name, label=label, created_at=ctx.clock.now())
        session.add(group)
        record_event(session, kind="ReviewGroupCreated", actor=ctx.actor, entity="group",
                     entity_id=name, at=group.created_at, data={"label": label})
        session.flush()
        return _view(session, group)


def list_groups(ctx: Context) -> list[GroupView]:
    with ctx.sessions() as session:
        return [_view(session, g) for g in session.scalars(
            select(ReviewGroup).order_by(ReviewGroup.name))]


def show_group(ctx: Context, name: str) -> GroupView:
    with ctx.sessions() as session:
        return _view(session, _group(session, name))


def delete_group(ctx: Context, name: str) -> None:
    """Delete a group with its members and scope. Refused while a live staged case waits for
    one of its stages (those cases would wait for nobody)."""
    with write_transaction(ctx.sessions) as session:
        group = _group(session, name, lock=True)
        waiting = session.scalar(
            select(func.count()).select_from(Disposal)
            .where(Disposal.state == "pending_review", Disposal.stage_group == group.name)) or 0
        if waiting:
            raise LifecycleError(f"group: {waiting} case(s) wait for a stage of group "
                                 f"{group.name!r}: it cannot be deleted while they do")
        session.execute(delete(GroupMember).where(GroupMember.group_name == group.name))
        session.execute(delete(ReviewScope).where(ReviewScope.principal_kind == "group",
                                                  ReviewScope.principal == group.name))
        session.delete(group)
        record_event(session, kind="ReviewGroupDeleted", actor=ctx.actor, entity="group",
                     entity_id=group.name, at=ctx.clock.now())


def _user(session: Session, username: str) -> str:
    name = username.strip()
    user = session.scalar(select(WebUser.username).where(WebUser.username == name))
    if user is None:
        raise LifecycleError(f"user: there is no user {name!r} (user names are as stored: "
                             "see 'retentiond users list')")
    return user


def add_member(ctx: Context, group: str, username: str) -> GroupView:
    """Add a user to a group (adding them twice is a no-op)."""
    with write_transaction(ctx.sessions) as session:
        g = _group(session, group, lock=True)
        user = _user(session, username)
        if session.get(GroupMember, (g.name, user)) is None:
            session.add(GroupMember(group_name=g.name, username=user))
            record_event(session, kind="ReviewGroupMemberAdded", actor=ctx.actor,
                         entity="group", entity_id=g.name, at=ctx.clock.now(),
                         data={"username": user})
            session.flush()
        return _view(session, g)


def remove_member(ctx: Context, group: str, username: str) -> GroupView:
    with write_transaction(ctx.sessions) as session:
        g = _group(session, group, lock=True)
        member = session.get(GroupMember, (g.name, username.strip()))
        if member is None:
            raise LifecycleError(f"user: {username.strip()!r} is not a member of group "
                                 f"{g.name!r}")
        session.delete(member)
        record_event(session, kind="ReviewGroupMemberRemoved", actor=ctx.actor,
                     entity="group", entity_id=g.name, at=ctx.clock.now(),
                     data={"username": member.username})
        session.flush()
        return _view(session, g)


def set_scope(ctx: Context, kind: str, principal: str, *, controllers: list[str],
              categories: list[str], clear: bool = False) -> tuple[tuple[str | None, str | None], ...]:
    """Replace the scope of a group (``kind='group'``) or a user (``'user'``): one row per
    controller and category named (each controller with each category; either alone means
    any of the other). ``clear``: no rows (unscoped, unless a group they are in has rows)."""
    if clear and (controllers or categories):
        raise LifecycleError("--clear: give either --clear or --controller/--category, not both")
    if not clear and not (controllers or categories):
        raise LifecycleError("--controller: name at least one controller or category, or "
                             "--clear to remove the scope")
    with write_transaction(ctx.sessions) as session:
        if kind == "group":
            name = _group(session, principal, lock=True).name
        elif kind == "user":
            name = _user(session, principal)
        else:
            raise LifecycleError(f"scope: {kind!r} is not 'group' or 'user'")
        categories_known = set(ctx.policy.categories)
        rows: list[tuple[str | None, str | None]] = []
        if not clear:
            rows = _scope_rows_with_policy(session, controllers, categories, categories_known)
        before = _rows(session, kind, name)
        session.execute(delete(ReviewScope).where(ReviewScope.principal_kind == kind,
                                                  ReviewScope.principal == name))
        for controller, category in rows:
            session.add(ReviewScope(principal_kind=kind, principal=name,
                                    controller=controller, category=category))
        record_event(session, kind="ReviewScopeSet", actor=ctx.actor, entity=kind,
                     entity_id=name, at=ctx.clock.now(),
                     data={"before": [list(r) for r in before], "after": [list(r) for r in rows]})
        session.flush()
        return _rows(session, kind, name)


def _scope_rows_with_policy(session: Session, controllers: list[str], categories: list[str],
                            known: set[str]) -> list[tuple[str | None, str | None]]:
    codes: list[str | None] = []
    for raw in dict.fromkeys(c.strip() for c in controllers):
        if not session.scalar(select(Controller.id).where(Controller.code == raw)):
            raise LifecycleError(f"--controller: there is no controller {raw!r}")
        codes.append(raw)
    cats: list[str | None] = []
    for raw in dict.fromkeys(c.strip() for c in categories):
        if raw not in known and session.scalar(
                select(Record.id).where(Record.category == raw).limit(1)) is None:
            raise LifecycleError(f"--category: {raw!r} is the category of no rule in force "
                                 "and of no record")
        cats.append(raw)
    return [(c, k) for c in (codes or [None]) for k in (cats or [None])]


def user_scope(ctx: Context, username: str) -> tuple[tuple[str | None, str | None], ...]:
    """A user's own scope rows (not their groups')."""
    with ctx.sessions() as session:
        return _rows(session, "user", _user(session, username))
