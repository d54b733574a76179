"""Execution a batch at a time, on both backends: one start and one finish transaction per
batch, each case's own outcome and audit events, the SQL connector's batch delete (children
first) and the one-at-a-time loop for connectors without batch methods."""

from __future__ import annotations

import datetime as dt

import pytest
from execution_support import (
    DUE_DOB,
    connectors,
    events,
    holding_database,
    holding_upns,
    make_files,
    make_holding,
    queue_and_approve,
    seed,
    states,
)
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.orm import Session

from retentiond.connectors import (
    BatchConnector,
    Connector,
    ConnectorRef,
    ConnectorRegistry,
    PermanentConnectorError,
    TransientConnectorError,
    delete_each,
    exists_each,
)
from retentiond.connectors import sql as sql_connector
from retentiond.connectors.sql import KeyedTable, SqlConnector
from retentiond.lifecycle import execute
from retentiond.lifecycle.holds import place_hold
from retentiond.registry.models import AuditEvent, Disposal, DisposalExecution

OWNER = "batch-worker"


@pytest.fixture
def holding_url(database_url, tmp_path):
    """A holding database beside the registry, on the same backend."""
    yield from holding_database(database_url, tmp_path)


class Commits:
    """Counts the registry's committed transactions (every Session commit) while active."""

    def __init__(self):
        self.n = 0

    def _count(self, _session):
        self.n += 1

    def __enter__(self):
        event.listen(Session, "after_commit", self._count)
        return self

    def __exit__(self, *exc):
        event.remove(Session, "after_commit", self._count)


class Faulty:
    """A batch connector over the real SQL connector whose ``delete_many`` reports a transient
    error for one locator and a permanent one for another (as a plug-in's would: a row lock,
    a refused key), and passes every other record to the real ``delete_many``."""

    def __init__(self, inner, *, transient, permanent):
        self.inner, self.transient, self.permanent = inner, transient, permanent
        self.name, self.kind = inner.name, inner.kind
        self.batches = []

    def delete_many(self, items):
        self.batches.append(sorted(ref.locator for ref, _ in items))
        out = {}
        rest = []
        for ref, key in items:
            if ref.locator == self.transient:
                out[key] = TransientConnectorError(f"{self.name}: row locked (OperationalError)")
            elif ref.locator == self.permanent:
                out[key] = PermanentConnectorError(f"{self.name}: delete refused")
            else:
                rest.append((ref, key))
        out.update(self.inner.delete_many(rest))
        return out

    def exists_many(self, refs):
        return self.inner.exists_many(refs)

    def delete(self, ref, key):
        raise AssertionError("the executor must use delete_many for a batch connector")

    def exists(self, ref):
        raise AssertionError("the executor must use exists_many for a batch connector")

    def export(self, ref):
        return self.inner.export(ref)

    def close(self):
        self.inner.close()


class OneAtATime:
    """A connector with only the Connector protocol (as a third-party plug-in may be): the
    executor loops over ``delete`` and ``exists``; one locator's delete fails transiently."""

    def __init__(self, inner, *, transient):
        self.inner, self.transient = inner, transient
        self.name, self.kind = inner.name, inner.kind
        self.deleted, self.checked = [], []

    def delete(self, ref, key):
        self.deleted.append(key)
        if ref.locator == self.transient:
            raise TransientConnectorError(f"{self.name}: database unavailable (OperationalError)")
        return self.inner.delete(ref, key)

    def exists(self, ref):
        self.checked.append(ref.locator)
        return self.inner.exists(ref)

    def export(self, ref):
        return self.inner.export(ref)

    def close(self):
        self.inner.close()


def _mixed_estate(ctx, tmp_path, holding_url):
    make_holding(holding_url, ["U1", "U2", "U3", "U4", "U5", "U6"])
    make_files(tmp_path / "files", ["case-a"])
    seed(ctx, tmp_path, [
        *({"record_id": f"R{i}", "system": "mis", "locator": f"U{i}", "date_of_birth": DUE_DOB}
          for i in range(1, 7)),
        {"record_id": "F1", "system": "files", "locator": "case-a", "date_of_birth": DUE_DOB},
    ])
    return queue_and_approve(ctx)


def test_mixed_batch_each_case_gets_its_own_outcome(ctx, clock, tmp_path, holding_url):
    """One claimed batch: three deleted together, one transient error (backed off), one
    permanent (failed), one held between the claim and the connector work (not touched), and
    a file deleted through the one-at-a-time loop; one start and one finish transaction."""
    cases = _mixed_estate(ctx, tmp_path, holding_url)
    real = connectors(tmp_path, holding_url)
    faulty = Faulty(real.get("mis"), transient="U3", permanent="U4")
    assert isinstance(faulty, BatchConnector)
    registry = ConnectorRegistry({"mis": faulty, "casefiles": real.get("casefiles")},
                                 {"mis": "mis", "files": "casefiles"})
    ids, held, withdrawn = execute._claim(ctx, owner=OWNER, batch_size=10, lease_s=60,
                                          exclude=set())
    assert (len(ids), held, withdrawn) == (7, 0, 0)
    place_hold(ctx, scope="record:R5", hold_type="legal", reason="litigation")
    with Commits() as commits:
        results = execute._execute_batch(ctx, registry, ids, owner=OWNER, lease_s=60,
                                         stop=None, max_attempts=8, backoff_s=10,
                                         max_backoff_s=3600)
    real.close()
    # The start, one "about to be sent" mark per connector group (after its data was seen
    # present), and the finish; the hold was found in the start transaction.
    assert commits.n == 4
    by_key = {k: results[cases[k]] for k in cases}
    assert by_key == {"R1": "executed", "R2": "executed", "R6": "executed", "F1": "executed",
                      "R3": "retry_scheduled", "R4": "failed", "R5": "held"}
    assert faulty.batches == [["U1", "U2", "U3", "U4", "U6"]]
    assert holding_upns(holding_url) == ({"U3", "U4", "U5"}, {"U3", "U4", "U5"})
    assert not (tmp_path / "files" / "case-a").exists()
    s = states(ctx)
    assert (s["R1"], s["R3"], s["R4"], s["R5"]) == ("executed", "approved", "failed", "held")
    for key in ("R1", "R2", "R6", "F1"):
        assert events(ctx, cases[key])[-2:] == ["DisposalClaimed", "DisposalExecuted"]
    assert events(ctx, cases["R3"])[-1] == "DisposalRetryScheduled"
    assert events(ctx, cases["R4"])[-1] == "DisposalFailed"
    assert events(ctx, cases["R5"])[-1] == "DisposalHeld"
    with ctx.sessions() as session:
        r3 = session.get(Disposal, cases["R3"])
        assert r3.next_attempt_at == clock.now() + dt.timedelta(seconds=10)
        assert "row locked" in r3.last_error and r3.lease_owner is None
        assert "delete refused" in session.get(Disposal, cases["R4"]).last_error
        rows = {r.disposal_id: r for r in session.scalars(select(DisposalExecution))}
        assert {d for d, r in rows.items() if r.executed_at} == \
            {cases[k] for k in ("R1", "R2", "R6", "F1")}
        # R3 and R4 were seen present and their deletes sent: a retry may count them absent.
        assert {d for d, r in rows.items() if r.action_sent_at} == \
            {cases[k] for k in ("R1", "R2", "R3", "R4", "R6", "F1")}
        r1 = rows[cases["R1"]]
        assert r1.method.startswith("deleted 3 rows (2 from pupil_marks, 1 from pupils) in one "
                                    "transaction") and "U1" not in r1.method
        assert r1.verification == "mis.exists() is false after the delete"
        assert rows[cases["F1"]].connector_kind == "filesystem"
        executed = session.scalars(select(AuditEvent.data)
                                   .where(AuditEvent.kind == "DisposalExecuted")).all()
    assert len(executed) == 4 and {d["connector"] for d in executed} == {"mis", "casefiles"}


def test_a_whole_batch_goes_through_execute_due_in_four_commits_a_batch(ctx, tmp_path,
                                                                        holding_url):
    """Through the entry point: claim, start, the sent mark of its one connector group, and
    finish per batch, whatever its size."""
    make_holding(holding_url, [f"U{i}" for i in range(8)])
    seed(ctx, tmp_path, [{"record_id": f"R{i}", "system": "mis", "locator": f"U{i}",
                          "date_of_birth": DUE_DOB} for i in range(8)])
    cases = queue_and_approve(ctx)
    registry = connectors(tmp_path, holding_url)
    with Commits() as commits:
        result = execute.execute_due(ctx, registry, owner=OWNER, batch_size=4, lease_s=60)
    registry.close()
    assert (result.claimed, result.executed) == (8, 8)
    # Two full batches of four commits, and the claim that finds nothing left.
    assert commits.n == 4 * 2 + 1
    assert holding_upns(holding_url) == (set(), set())
    with ctx.sessions() as session:
        kinds = session.scalars(select(AuditEvent.entity_id).where(
            AuditEvent.kind == "DisposalExecuted")).all()
    assert sorted(kinds) == sorted(str(i) for i in cases.values())


@pytest.mark.parametrize("size", [4, 12])
def test_a_batchs_registry_statements_do_not_grow_with_its_size(ctx, tmp_path, holding_url,
                                                                 size):
    """The execution rows of a batch are read once per transaction, never once per case (a
    first attempt, with no rows yet, used to ask again for each case: 2.5 ms a case at 1M)."""
    make_holding(holding_url, [f"U{i}" for i in range(size)])
    seed(ctx, tmp_path, [{"record_id": f"R{i}", "system": "mis", "locator": f"U{i}",
                          "date_of_birth": DUE_DOB} for i in range(size)])
    queue_and_approve(ctx)
    registry = connectors(tmp_path, holding_url)
    reads: list[str] = []

    def count(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "disposal_executions" in statement:
            reads.append(statement)

    engine = ctx.sessions.kw["bind"]
    event.listen(engine, "before_cursor_execute", count)
    try:
        result = execute.execute_due(ctx, registry, owner=OWNER, batch_size=size, lease_s=60)
    finally:
        event.remove(engine, "before_cursor_execute", count)
        registry.close()
    assert result.executed == size
    # Start, sent mark and finish each read the batch's rows once, whatever its size.
    assert len(reads) <= 3, len(reads)


def test_connector_without_batch_methods_is_looped_one_record_at_a_time(ctx, tmp_path,
                                                                        holding_url):
    """A plug-in with only delete/exists keeps working: each record deleted and checked on its
    own, and one record's error is that record's alone."""
    make_holding(holding_url, ["U1", "U2", "U3"])
    seed(ctx, tmp_path, [{"record_id": f"R{i}", "system": "mis", "locator": f"U{i}",
                          "date_of_birth": DUE_DOB} for i in (1, 2, 3)])
    cases = queue_and_approve(ctx)
    real = connectors(tmp_path, holding_url)
    plain = OneAtATime(real.get("mis"), transient="U2")
    assert isinstance(plain, Connector) and not isinstance(plain, BatchConnector)
    registry = ConnectorRegistry({"mis": plain}, {"mis": "mis"})
    result = execute.execute_due(ctx, registry, owner=OWNER, batch_size=10, lease_s=60)
    real.close()
    assert (result.executed, result.retry_scheduled) == (2, 1)
    assert plain.deleted == [f"disposal-{cases[k]}" for k in ("R1", "R2", "R3")]
    # Each looked for before anything was sent (a first attempt), then verified gone only
    # where deleted.
    assert sorted(plain.checked) == ["U1", "U1", "U2", "U3", "U3"]
    assert holding_upns(holding_url)[0] == {"U2"}
    s = states(ctx)
    assert (s["R1"], s["R2"], s["R3"]) == ("executed", "approved", "executed")


def _sql(holding_url):
    return SqlConnector("mis", holding_url, KeyedTable("pupils", "upn"),
                        (KeyedTable("pupil_marks", "upn"),))


def _refs(*locators):
    return [(ConnectorRef("mis", loc, f"R-{loc}"), f"disposal-{n}")
            for n, loc in enumerate(locators)]


def test_sql_batch_delete_takes_children_first_in_chunks(holding_url, monkeypatch):
    """delete_many removes each record's child and main rows (the child's foreign key would
    refuse the main row first), in IN lists of CHUNK locators; absent is success; exists_many
    sees what is left in any table."""
    monkeypatch.setattr(sql_connector, "CHUNK", 2)
    make_holding(holding_url, ["U1", "U2", "U3", "U4", "U5"])
    connector = _sql(holding_url)
    items = _refs("U1", "U2", "U3", "U9")
    done = connector.delete_many(items)
    assert set(done) == {key for _, key in items}
    for key in ("disposal-0", "disposal-1", "disposal-2"):
        assert done[key] == ("deleted 3 rows (2 from pupil_marks, 1 from pupils) in one "
                             "transaction, with the other records of a batch of 4")
    assert done["disposal-3"].endswith("already absent")
    assert holding_upns(holding_url) == ({"U4", "U5"}, {"U4", "U5"})
    left = connector.exists_many([ref for ref, _ in _refs("U1", "U4", "U5", "U9")])
    assert {r.locator for r in left} == {"U4", "U5"}
    # A record put back after its delete is seen again.
    engine = create_engine(holding_url)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO pupils VALUES ('U7', 'Pupil7', '2000-01-01', '')"))
        conn.execute(text("INSERT INTO pupil_marks VALUES (70, 'U7', 'maths', 1)"))
    engine.dispose()
    assert {r.locator for r in connector.exists_many([r for r, _ in _refs("U7", "U1")])} == {"U7"}
    assert connector.delete_many(_refs("U1"))["disposal-0"].endswith("already absent")
    connector.close()


def test_sql_batch_delete_isolates_the_record_the_database_refuses(database_url, holding_url):
    """A batch the database refuses (a trigger keeps one record) is retried record by record,
    so only that record fails, permanently; the others are deleted."""
    make_holding(holding_url, ["U1", "U2", "U3"])
    engine = create_engine(holding_url)
    with engine.begin() as conn:
        if database_url.startswith("sqlite"):
            conn.execute(text("CREATE TRIGGER keep_u2 BEFORE DELETE ON pupils "
                              "WHEN old.upn = 'U2' BEGIN SELECT RAISE(ABORT, 'kept'); END"))
        else:
            conn.execute(text("CREATE FUNCTION keep_u2() RETURNS trigger AS $$ BEGIN "
                              "IF OLD.upn = 'U2' THEN RAISE EXCEPTION 'kept'; END IF; "
                              "RETURN OLD; END $$ LANGUAGE plpgsql"))
            conn.execute(text("CREATE TRIGGER keep_u2 BEFORE DELETE ON pupils FOR EACH ROW "
                              "EXECUTE FUNCTION keep_u2()"))
    engine.dispose()
    connector = _sql(holding_url)
    done = connector.delete_many(_refs("U1", "U2", "U3"))
    assert isinstance(done["disposal-1"], PermanentConnectorError)
    assert "U2" not in str(done["disposal-1"])
    assert done["disposal-0"].startswith("deleted 3 rows")
    assert done["disposal-2"].startswith("deleted 3 rows")
    assert holding_upns(holding_url)[0] == {"U2"}
    connector.close()


def test_batch_helpers_report_an_unreachable_database_for_every_record(tmp_path):
    """A whole-batch error (the holding database cannot be opened) is each record's transient
    error, through the helpers the executor calls."""
    missing = tmp_path / "no-such-dir" / "holding.db"
    connector = SqlConnector("mis", f"sqlite:///{missing}", KeyedTable("pupils", "upn"))
    items = _refs("U1", "U2")
    deleted = delete_each(connector, items)
    assert all(isinstance(e, TransientConnectorError) for e in deleted.values())
    assert set(deleted) == {"disposal-0", "disposal-1"}
    checked = exists_each(connector, items)
    assert all(isinstance(e, TransientConnectorError) for e in checked.values())
    connector.close()
