"""The hash-chained audit trail: sealed in the writing transaction, and tamper-evident."""

from __future__ import annotations

import datetime as dt
import json
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from retentiond.audit.chain import GENESIS, head, link, verify
from retentiond.ingest.controllers import import_controllers
from retentiond.ingest.records import import_records
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.holds import lift_hold, place_hold
from retentiond.lifecycle.review import approve
from retentiond.registry.models import AuditEvent

TODAY = dt.date(2026, 11, 22)


def _seed(ctx, tmp_path: Path, n: int = 12) -> None:
    ctl = tmp_path / "controllers.csv"
    ctl.write_text("code,name,email\nSCH-01,Synthetic School One,dpo@sch01.example\n")
    import_controllers(ctx, ctl)
    rows = ["record_id,category,controller,subject_ref,date_of_birth,opened_on"]
    for i in range(n):
        # Half are due (born 1990: 25th birthday long past), half are not (born 2015).
        year = 1990 if i % 2 == 0 else 2015
        rows.append(f"R-{i:03d},education.pupil_record,SCH-01,S-{i:03d},{year}-03-0{1 + i % 9},")
    rec = tmp_path / "records.csv"
    rec.write_text("\n".join(rows) + "\n")
    import_records(ctx, rec)
    evaluate(ctx, TODAY)


def _verify(ctx):
    with ctx.sessions() as session:
        return verify(session)


def _raw(ctx, sql: str, **params) -> None:
    with ctx.sessions.kw["bind"].begin() as conn:
        conn.execute(text(sql), params)


def test_every_event_is_sealed_in_order(ctx, tmp_path):
    """Each event written by the lifecycle is in the chain, positions 1..N with no gap."""
    _seed(ctx, tmp_path)
    hold = place_hold(ctx, scope="record:R-002", hold_type="legal", reason="synthetic claim")
    lift_hold(ctx, hold.id, reason="claim settled")
    with ctx.sessions() as session:
        total = session.scalar(select(func.count()).select_from(AuditEvent))
        seqs = list(session.scalars(select(AuditEvent.seq).order_by(AuditEvent.seq)))
        unsealed = session.scalar(select(func.count()).where(AuditEvent.seq.is_(None)))
    assert total and total > 6
    assert seqs == list(range(1, total + 1))
    assert unsealed == 0
    result = _verify(ctx)
    assert result.ok and result.events == total and result.head_seq == total


def test_first_event_follows_genesis_and_links_recompute(ctx, tmp_path):
    """The first event's previous hash is the genesis value and each hash recomputes."""
    _seed(ctx, tmp_path, n=2)
    with ctx.sessions() as session:
        events = list(session.scalars(select(AuditEvent).order_by(AuditEvent.seq)))
    assert events[0].prev_hash == GENESIS
    prev = GENESIS
    for ev in events:
        assert ev.prev_hash == prev and link(prev, ev) == ev.hash
        prev = ev.hash


def test_altered_event_is_found(ctx, tmp_path):
    """Changing any field of an event in the database is reported at that event."""
    _seed(ctx, tmp_path)
    _raw(ctx, "UPDATE audit_events SET reason = 'nothing to see' WHERE seq = 4")
    result = _verify(ctx)
    assert not result.ok and result.problem.kind == "altered" and result.problem.seq == 4


def test_altered_data_is_found(ctx, tmp_path):
    """Changing an event's JSON data is reported as an alteration."""
    _seed(ctx, tmp_path)
    with ctx.sessions.begin() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 3)
                        .values(data={"record": "R-999"}))
    result = _verify(ctx)
    assert result.problem is not None and result.problem.kind == "altered"
    assert result.problem.seq == 3


def test_removed_event_is_found(ctx, tmp_path):
    """Deleting an event from the middle is reported as a removal at its position."""
    _seed(ctx, tmp_path)
    _raw(ctx, "DELETE FROM audit_events WHERE seq = 5")
    result = _verify(ctx)
    assert result.problem is not None and result.problem.kind == "removed"
    assert result.problem.seq == 5


def test_removed_last_event_is_caught_by_an_anchor(ctx, tmp_path):
    """Deleting the newest event leaves a shorter valid chain; a published head catches it."""
    _seed(ctx, tmp_path)
    with ctx.sessions() as session:
        seq, digest = head(session)
    _raw(ctx, "DELETE FROM audit_events WHERE seq = :s", s=seq)
    assert _verify(ctx).ok
    with ctx.sessions() as session:
        result = verify(session, anchors={seq: digest})
    assert result.problem is not None and result.problem.kind == "removed"
    assert result.problem.seq == seq


def test_inserted_event_is_found(ctx, tmp_path):
    """A row inserted directly into the table is reported as inserted."""
    _seed(ctx, tmp_path)
    _raw(ctx, "INSERT INTO audit_events (occurred_at, kind, actor, entity, entity_id, data) "
              "VALUES (:t, 'DisposalApproved', 'mallory', 'disposal', '1', '{}')",
         t=dt.datetime(2026, 11, 22, 12, 0))
    result = _verify(ctx)
    assert result.problem is not None and result.problem.kind == "inserted"


def test_inserted_event_is_not_laundered_by_a_later_transaction(ctx, tmp_path):
    """A stray row stays outside the chain when retentiond next writes events."""
    _seed(ctx, tmp_path)
    _raw(ctx, "INSERT INTO audit_events (occurred_at, kind, actor, entity, entity_id, data) "
              "VALUES (:t, 'HoldLifted', 'mallory', 'hold', '1', '{}')",
         t=dt.datetime(2026, 11, 22, 12, 0))
    place_hold(ctx, scope="record:R-004", hold_type="police", reason="synthetic request")
    with ctx.sessions() as session:
        stray = session.scalar(select(AuditEvent).where(AuditEvent.actor == "mallory"))
        result = verify(session)
    assert stray is not None and stray.seq is None
    assert result.problem is not None and result.problem.kind == "inserted"
    assert result.problem.event_id == stray.id


def test_stray_row_between_a_transactions_events_stays_outside_the_chain(ctx, tmp_path):
    """Sealing reads a transaction's events by id range: a row written directly with an id
    inside that range (in the same transaction here; on PostgreSQL it could be another's) is
    not sealed with them, and verify still reports it."""
    from retentiond.audit import record_event

    _seed(ctx, tmp_path)
    at = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
    with ctx.sessions.begin() as session:
        record_event(session, kind="HoldPlaced", actor="officer.one", entity="hold",
                     entity_id="1", at=at, reason="first")
        session.flush()
        session.execute(text(
            "INSERT INTO audit_events (occurred_at, kind, actor, entity, entity_id, data) "
            "VALUES (:t, 'HoldLifted', 'mallory', 'hold', '1', '{}')"), {"t": at})
        record_event(session, kind="HoldPlaced", actor="officer.one", entity="hold",
                     entity_id="2", at=at, reason="second")
        session.flush()  # the two ORM events are noticed on flush; the raw row is not
    with ctx.sessions() as session:
        rows = session.execute(
            select(AuditEvent.id, AuditEvent.actor, AuditEvent.seq)
            .order_by(AuditEvent.id.desc()).limit(3)).all()
        result = verify(session)
    second, stray, first = rows
    assert first.id < stray.id < second.id
    assert stray.actor == "mallory" and stray.seq is None
    assert first.seq is not None and second.seq == first.seq + 1
    assert result.problem is not None and result.problem.kind == "inserted"
    assert result.problem.event_id == stray.id


def test_forged_event_at_the_end_is_found(ctx, tmp_path):
    """A row given the next position but not the right hash is reported."""
    _seed(ctx, tmp_path)
    with ctx.sessions() as session:
        seq, digest = head(session)
    _raw(ctx, "INSERT INTO audit_events (occurred_at, kind, actor, entity, entity_id, data, "
              "seq, prev_hash, hash) VALUES (:t, 'DisposalApproved', 'mallory', 'disposal', "
              "'1', '{}', :s, :p, :h)",
         t=dt.datetime(2026, 11, 22, 12, 0), s=seq + 1, p=digest, h="f" * 64)
    result = _verify(ctx)
    assert result.problem is not None and result.problem.kind == "altered"
    assert result.problem.seq == seq + 1


def test_rewritten_chain_is_caught_by_an_anchor(ctx, tmp_path):
    """Rewriting an event and every hash after it passes a bare walk but fails an anchor."""
    _seed(ctx, tmp_path)
    with ctx.sessions() as session:
        anchor_seq, anchor_hash = head(session)
    with ctx.sessions.begin() as session:
        session.execute(update(AuditEvent).where(AuditEvent.seq == 2).values(actor="mallory"))
        prev = GENESIS
        for ev in session.scalars(select(AuditEvent).order_by(AuditEvent.seq)):
            ev.prev_hash, ev.hash = prev, link(prev, ev)
            prev = ev.hash
    assert _verify(ctx).ok
    with ctx.sessions() as session:
        result = verify(session, anchors={anchor_seq: anchor_hash})
    assert result.problem is not None and result.problem.seq == anchor_seq


def test_refused_operation_writes_no_event(ctx, tmp_path):
    """An operation that is refused leaves the chain exactly as it was."""
    _seed(ctx, tmp_path)
    with ctx.sessions() as session:
        before = head(session)
    with pytest.raises(Exception, match="no disposal"):
        approve(ctx, [999_999], reason="typo")
    with ctx.sessions() as session:
        assert head(session) == before


@pytest.mark.parametrize("writers", [4])
def test_concurrent_writers_keep_one_chain(ctx, tmp_path, writers, database_url):
    """Writers in parallel transactions still produce one unbroken chain."""
    _seed(ctx, tmp_path, n=16)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(3):
                h = place_hold(ctx, scope=f"record:R-{(i * 3 + j) % 16:03d}", hold_type="other",
                               reason=f"synthetic {i}-{j}")
                lift_hold(ctx, h.id, reason="done")
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    result = _verify(ctx)
    assert result.ok, result.problem


def test_export_jsonl_carries_the_chain(ctx, tmp_path):
    """An export lists every event with its position and hashes, for the dates asked."""
    from io import StringIO

    from retentiond.audit.export import events, write

    _seed(ctx, tmp_path, n=4)
    out = StringIO()
    with ctx.sessions() as session:
        n = write(events(session, start=TODAY, end=TODAY), out, "jsonl")
    rows = [json.loads(line) for line in out.getvalue().splitlines()]
    assert n == len(rows) > 0
    assert all(r["hash"] and r["seq"] for r in rows)
    out2 = StringIO()
    with ctx.sessions() as session:
        assert write(events(session, start=TODAY + dt.timedelta(days=1), end=None), out2,
                     "csv") == 0
    assert out2.getvalue().startswith("seq,id,occurred_at")


def _independent_hash(prev: str, row) -> str:
    """The documented chain format, written out here rather than taken from the module: a
    change to how events are sealed must not change a byte of what is hashed."""
    doc = {"seq": row.seq,
           "occurred_at": row.occurred_at.astimezone(dt.UTC).isoformat(timespec="microseconds"),
           "kind": row.kind, "actor": row.actor, "entity": row.entity,
           "entity_id": row.entity_id, "reason": row.reason,
           "policy_version": row.policy_version, "data": row.data}
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=str).encode()
    import hashlib

    return hashlib.sha256(prev.encode() + b"\n" + body).hexdigest()


def test_sealed_columns_are_the_documented_hashes(ctx, tmp_path):
    """Events sealed in bulk (an evaluation's, written by INSERT ... SELECT) and one by one
    (ORM-added, non-ASCII data) carry exactly the hashes of the documented format, and the
    chain verifies."""
    from retentiond.audit import record_event

    _seed(ctx, tmp_path, n=30)
    with ctx.sessions.begin() as session:
        record_event(session, kind="HoldPlaced", actor="officer.one", entity="hold",
                     entity_id="7", at=dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC),
                     reason="Ceredigion — ‘quoted’", data={"b": [1, 2], "a": "é"})
    with ctx.sessions() as session:
        rows = session.execute(select(AuditEvent).order_by(AuditEvent.seq)).scalars().all()
        assert len(rows) > 15 and [r.seq for r in rows] == list(range(1, len(rows) + 1))
        prev = GENESIS
        for row in rows:
            assert row.prev_hash == prev
            assert row.hash == _independent_hash(prev, row)
            prev = row.hash
        assert verify(session).ok


def test_record_events_writes_what_record_event_writes_and_the_chain_verifies(ctx):
    """The set-based writer (execution's claim uses it) stores the same fields, in the given
    order, as one ``record_event`` call each, and seals them in the same transaction."""
    from retentiond.audit.events import record_event, record_events

    at = dt.datetime(2026, 11, 22, 9, 30, tzinfo=dt.UTC)
    items = [(7, {"owner": "w1", "attempt": 1}), (3, {"owner": "w1", "attempt": 2}), (9, {})]
    with ctx.sessions.begin() as session:
        for entity_id, data in items:
            record_event(session, kind="DisposalClaimed", actor="svc", entity="disposal",
                         entity_id=entity_id, at=at, reason="why", policy_version="p1",
                         data=data)
    with ctx.sessions.begin() as session:
        record_events(session, kind="DisposalClaimed", actor="svc", entity="disposal", at=at,
                      reason="why", policy_version="p1", events=items)
    with ctx.sessions() as session:
        rows = session.execute(
            select(AuditEvent.occurred_at, AuditEvent.kind, AuditEvent.actor, AuditEvent.entity,
                   AuditEvent.entity_id, AuditEvent.reason, AuditEvent.policy_version,
                   AuditEvent.data, AuditEvent.seq)
            .where(AuditEvent.kind == "DisposalClaimed").order_by(AuditEvent.id)).all()
    assert len(rows) == 6
    assert [r[:8] for r in rows[:3]] == [r[:8] for r in rows[3:]]
    assert [r.entity_id for r in rows[3:]] == ["7", "3", "9"]
    assert all(r.seq is not None for r in rows)
    assert _verify(ctx).ok
