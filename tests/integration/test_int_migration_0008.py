"""Migration 0008 on real SQLite and PostgreSQL: what one person's repeated approvals and
tokens made for others become at the upgrade, and the index that refuses a second live
approval by one person from then on."""

from __future__ import annotations

import pytest
from alembic import command
from conftest import TODAY
from int_support import as_actor, cp_case, live_case, load_records, seed_controllers
from sqlalchemy import insert, select, text
from sqlalchemy.exc import IntegrityError

from retentiond.audit import record_event, verify
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.review import approve, repeated_approval
from retentiond.registry import models as m
from retentiond.registry.db import _alembic_config, current_revision, head_revision, upgrade
from retentiond.web.accounts import add_user
from retentiond.web.sessions import digest


def _engine(ctx):
    return ctx.sessions.kw["bind"]


def test_database_refuses_a_second_live_approval_by_one_person(ctx, tmp_path):
    """Written straight into the table, a second live approval by the same person on the same
    case is refused by the database (and recognised as such); one beside a voided approval
    is not."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [cp_case("R-CP", "1980-01-01")])
    evaluate(ctx, TODAY)
    cid = live_case(ctx, "R-CP").id
    approve(as_actor(ctx, "approver.a"), [cid], reason="first")
    now = ctx.clock.now()
    with pytest.raises(IntegrityError) as refused, ctx.sessions.begin() as session:
        session.execute(insert(m.Approval).values(disposal_id=cid, approver="approver.a",
                                                  reason="again", approved_at=now))
    # What approve() turns into "has already approved it", should its checks ever be passed.
    assert repeated_approval(refused.value)
    with ctx.sessions.begin() as session:
        session.execute(text("UPDATE approvals SET voided_at = :t"), {"t": now.replace(
            tzinfo=None) if ctx.sessions.kw["bind"].dialect.name == "sqlite" else now})
        session.execute(insert(m.Approval).values(disposal_id=cid, approver="approver.a",
                                                  reason="after a hold was lifted",
                                                  approved_at=now))


def test_upgrade_voids_repeats_returns_short_cases_and_revokes_tokens_made_for_others(ctx,
                                                                                       tmp_path):
    """At 0007, one person's three live approvals made a two-approver case approved, and an
    administrator made a token for an approver: the upgrade keeps the first approval, voids
    the others, returns the case to review, revokes that token and keeps the approver's own,
    all audited in a chain that verifies."""
    engine = _engine(ctx)
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [cp_case("R-CP", "1980-01-01"), cp_case("R-OK", "1980-01-01")])
    evaluate(ctx, TODAY)
    short, ok = live_case(ctx, "R-CP").id, live_case(ctx, "R-OK").id
    approve(as_actor(ctx, "approver.a"), [short, ok], reason="first")
    approve(as_actor(ctx, "approver.b"), [ok], reason="second")
    now = ctx.clock.now()
    add_user(ctx, username="admin.one", roles="admin", password=None)
    add_user(ctx, username="approver.a", roles="approver", password=None)
    # Made with today's code, then taken back to 0007 (later revisions' tables and columns go;
    # these rows stay), where what follows was possible.
    command.downgrade(_alembic_config(engine), "0007")
    assert current_revision(engine) == "0007"
    with ctx.sessions.begin() as session:
        # What four sessions of one approver left before this revision.
        # (Raw SQL: the model has later revisions' columns, such as approvals.stage.)
        at = now.replace(tzinfo=None) if engine.dialect.name == "sqlite" else now
        for _ in range(2):
            session.execute(text(
                "INSERT INTO approvals (disposal_id, approver, reason, approved_at) "
                "VALUES (:d, 'approver.a', 'again', :t)"), {"d": short, "t": at})
        session.execute(text("UPDATE disposals SET state = 'approved' WHERE id = :i"),
                        {"i": short})
        user_id = session.scalar(select(m.WebUser.id).where(m.WebUser.username == "approver.a"))
        for token_id, maker in ((1, "admin.one"), (2, "approver.a")):
            session.execute(text(
                "INSERT INTO api_tokens (id, user_id, name, token_hash, created_at) "
                "VALUES (:i, :u, :n, :h, :t)"),
                {"i": token_id, "u": user_id, "n": f"token-{token_id}", "h": digest(str(token_id)),
                 "t": now.replace(tzinfo=None) if engine.dialect.name == "sqlite" else now})
            record_event(session, kind="ApiTokenCreated", actor=maker, entity="user",
                         entity_id="approver.a", at=now,
                         data={"token_id": token_id, "name": f"token-{token_id}"})

    upgrade(engine)

    assert current_revision(engine) == head_revision()
    with ctx.sessions() as session:
        live = session.execute(select(m.Approval.disposal_id, m.Approval.approver)
                               .where(m.Approval.voided_at.is_(None))
                               .order_by(m.Approval.id)).all()
        assert live == [(short, "approver.a"), (ok, "approver.a"), (ok, "approver.b")]
        assert session.get_one(m.Disposal, short).state == "pending_review"
        assert session.get_one(m.Disposal, ok).state == "approved"
        tokens = {t.id: (t.issued_by, t.revoked_at is not None)
                  for t in session.scalars(select(m.ApiToken))}
        assert tokens == {1: ("admin.one", True), 2: ("approver.a", False)}
        kinds = [e.kind for e in session.scalars(
            select(m.AuditEvent).where(m.AuditEvent.actor == "retentiond:upgrade-0008")
            .order_by(m.AuditEvent.seq))]
        assert kinds == ["ApprovalVoided", "ApprovalVoided", "DisposalReturnedToReview",
                         "ApiTokenRevoked"]
        assert verify(session).ok
