"""``POST /api/v1/records`` and ``POST /api/v1/events`` on real SQLite and PostgreSQL: the
feeder role (tokens only), idempotent retries by ``Idempotency-Key`` (same body: same answer,
nothing applied twice; another body: 409; two at once: one applies), all-or-nothing batches,
trigger events that recompute and are audited, and hostile input."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from web_support import PASSWORD, Estate, seed, web_config

from retentiond.clock import FixedClock
from retentiond.lifecycle.context import LifecycleError
from retentiond.policy import PolicySet
from retentiond.registry.models import AuditEvent, ImportRun, Record, Subject
from retentiond.web.accounts import add_user, reset_password
from retentiond.web.app import create_app


@pytest.fixture
def estate(database_url: str, policy: PolicySet, clock: FixedClock) -> Estate:
    return seed(database_url, policy, clock, records=40)


@pytest.fixture
def client(estate: Estate, policy: PolicySet, clock: FixedClock,
           tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(web_config(estate.url, tmp_path), policy=policy, clock=clock,
                     sessions=estate.ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def push(client: TestClient, estate: Estate, path: str, body: dict, key: str = "k-1", *,
         user: str = "feeder1"):
    return client.post(f"/api/v1/{path}", json=body,
                       headers={"Authorization": f"Bearer {estate.tokens[user]}",
                                "Idempotency-Key": key})


def referral(key: str, opened: str = "2019-01-01") -> dict:
    return {"record_id": key, "category": "safeguarding.referral", "controller": "DEMO-LA",
            "opened_on": opened}


def cp(key: str, closed: str | None = None) -> dict:
    return {"record_id": key, "category": "child_protection.case", "controller": "DEMO-LA",
            "opened_on": "2000-01-01", "closed_on": closed or "", "subject_ref": f"S-{key}",
            "date_of_birth": "1995-03-01"}


def record(estate: Estate, key: str) -> Record:
    with estate.ctx.sessions() as session:
        found = session.scalar(select(Record).where(Record.record_key == key))
    assert found is not None
    return found


def count(estate: Estate, model, *where) -> int:
    with estate.ctx.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def test_push_records_and_retry_with_the_same_key(client, estate):
    """A batch is applied once; a retry with the same key and body gets the same answer
    (marked replayed) and applies nothing; the records are fed by 'api' and audited."""
    body = {"records": [referral("P-1"), referral("P-2", "2018-01-01")]}
    first = push(client, estate, "records", body)
    assert first.status_code == 200, first.text
    assert (first.json()["created"], first.json()["rows"]) == (2, 2)
    again = push(client, estate, "records", body)
    assert again.status_code == 200 and again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert count(estate, ImportRun, ImportRun.filename == "POST /api/v1/records") == 1
    assert (record(estate, "P-1").source, str(record(estate, "P-2").due_on)) == ("api",
                                                                                 "2024-01-01")
    with estate.ctx.sessions() as session:
        ev = session.scalar(select(AuditEvent).where(AuditEvent.kind == "RecordsImported")
                            .order_by(AuditEvent.id.desc()))
    assert (ev.actor, ev.data["source"], ev.data["created"]) == ("feeder1", "api", 2)


def test_same_key_with_another_body_is_refused(client, estate):
    """A key reused for a different request is refused (409) and applies nothing."""
    assert push(client, estate, "records", {"records": [referral("P-1")]}).status_code == 200
    r = push(client, estate, "records", {"records": [referral("P-9")]})
    assert r.status_code == 409 and "another request body" in r.json()["detail"]
    assert count(estate, Record, Record.record_key == "P-9") == 0
    # The key is the feeder's own: another route with it is another request too.
    r = push(client, estate, "events", {"record_id": "P-1", "event": "closed",
                                        "on": "2020-01-01"})
    assert r.status_code == 409


def test_bad_batch_is_refused_whole_with_item_and_field(client, estate):
    """One bad item refuses the batch: nothing applied; the problems name item and field;
    the same retry gets the same refusal."""
    body = {"records": [referral("P-1"), referral("P-2", "2019-02-30"),
                        {**referral("P-3"), "colour": "red"}, "not an object"]}
    r = push(client, estate, "records", body)
    assert r.status_code == 422
    assert r.json()["problems"] == [
        "records[1]: opened_on: '2019-02-30' is not a real date (day is out of range for month)",
        "records[2]: colour: unknown field 'colour'",
        "records[3]: (row): must be an object"]
    assert count(estate, Record, Record.record_key.in_(["P-1", "P-2", "P-3"])) == 0
    again = push(client, estate, "records", body)
    assert (again.status_code, again.json()) == (422, r.json())


def test_events_close_reopen_and_die_recompute_and_are_audited(client, estate):
    """closed sets the closure and the due date; reopened clears both; died records the
    subject's death and recomputes its records; each is audited; a retry changes nothing."""
    push(client, estate, "records", {"records": [cp("C-1")]}, key="load")
    assert record(estate, "C-1").due_on is None
    r = push(client, estate, "events", {"record_id": "C-1", "event": "closed",
                                        "on": "2001-06-01"}, key="e1")
    assert r.status_code == 200 and r.json()["changed"] is True
    assert str(record(estate, "C-1").due_on) == "2041-06-01"
    assert push(client, estate, "events", {"record_id": "C-1", "event": "closed",
                                           "on": "2001-06-01"}, key="e1").json() == r.json()
    r = push(client, estate, "events", {"record_id": "C-1", "event": "reopened",
                                        "on": "2026-11-01"}, key="e2")
    assert r.status_code == 200 and record(estate, "C-1").due_on is None
    r = push(client, estate, "events", {"record_id": "C-1", "event": "died",
                                        "on": "2010-01-01"}, key="e3")
    assert r.status_code == 200
    with estate.ctx.sessions() as session:
        assert str(session.scalar(select(Subject.date_of_death)
                                  .where(Subject.ref == "S-C-1"))) == "2010-01-01"
        kinds = list(session.scalars(select(AuditEvent.data).where(
            AuditEvent.kind == "TriggerEventReceived", AuditEvent.entity_id == "C-1")
            .order_by(AuditEvent.id)))
    assert [k["event"] for k in kinds] == ["closed", "reopened", "died"]


def test_unchanged_source_row_does_not_undo_an_event(client, estate):
    """The same row pushed again after a closure event is unchanged: the closure stands."""
    push(client, estate, "records", {"records": [cp("C-1")]}, key="load")
    push(client, estate, "events", {"record_id": "C-1", "event": "closed", "on": "2001-06-01"},
         key="close")
    r = push(client, estate, "records", {"records": [cp("C-1")]}, key="load-again")
    assert r.json()["unchanged"] == 1
    assert str(record(estate, "C-1").closed_on) == "2001-06-01"


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"record_id": "NO-SUCH", "event": "closed", "on": "2020-01-01"}, 404, "no record"),
    ({"record_id": "C-1", "event": "closed", "on": "9999-12-31"}, 422, "after today"),
    ({"record_id": "C-1", "event": "closed", "on": "1999-01-01"}, 422, "before the record was"),
    ({"record_id": "C-1", "event": "died", "on": "1990-01-01"}, 422, "before the subject's"),
    ({"record_id": "C-1", "event": "adopted", "on": "2020-01-01"}, 422, "not one of"),
    ({"record_id": "C-1", "event": "closed", "on": "2020-1-1"}, 422, "YYYY-MM-DD"),
    ({"record_id": "C-1", "event": "closed", "on": ""}, 422, "required"),
])
def test_bad_events_are_refused_nothing_changed(client, estate, body, status, words):
    """A never-there record, a 9999-12-31 date, dates before the facts they follow, an
    unknown event or a malformed date: refused, the record untouched."""
    push(client, estate, "records", {"records": [cp("C-1")]}, key="load")
    before = record(estate, "C-1")
    r = push(client, estate, "events", body, key="bad")
    assert r.status_code == status and words in r.json()["detail"], r.text
    after = record(estate, "C-1")
    assert (after.closed_on, after.due_on, after.updated_at) == (
        before.closed_on, before.due_on, before.updated_at)


def test_same_key_at_once_applies_once(client, estate):
    """Two requests with one key and body at the same moment: one applies, both get its answer."""
    for round_ in range(3):
        body = {"records": [referral(f"R{round_}-{n}") for n in range(50)]}
        answers: list = []

        def send(body: dict, key: str, answers: list) -> None:
            answers.append(push(client, estate, "records", body, key=key))

        threads = [threading.Thread(target=send, args=(body, f"race-{round_}", answers))
                   for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [a.status_code for a in answers] == [200, 200]
        assert answers[0].json() == answers[1].json()
        assert count(estate, ImportRun, ImportRun.filename == "POST /api/v1/records") == round_ + 1


def test_only_a_feeder_token_may_push(client, estate):
    """An IG officer's or an admin's token is refused (403); so is a request without a key."""
    for user in ("officer", "admin"):
        r = push(client, estate, "records", {"records": [referral("P-1")]}, user=user)
        assert r.status_code == 403
    r = client.post("/api/v1/records", json={"records": [referral("P-1")]},
                    headers={"Authorization": f"Bearer {estate.tokens['feeder1']}"})
    assert r.status_code == 422
    assert count(estate, Record, Record.record_key == "P-1") == 0


def test_feeder_has_no_password_no_pages_and_no_other_role(client, estate):
    """A feeder cannot be given a password or another role; its token opens no page and no
    read API."""
    ctx = estate.ctx
    with pytest.raises(LifecycleError, match="API tokens only"):
        add_user(ctx, username="feeder2", roles="feeder", password=PASSWORD)
    with pytest.raises(LifecycleError, match="cannot be combined"):
        add_user(ctx, username="feeder3", roles="feeder,ig_officer", password=None)
    with pytest.raises(LifecycleError, match="no password"):
        reset_password(ctx, "feeder1", PASSWORD)
    auth = {"Authorization": f"Bearer {estate.tokens['feeder1']}"}
    for path in ("/api/v1/disposals", "/queue", "/sources", "/api/v1/records/DEMO-R-000001"):
        assert client.get(path, headers=auth, follow_redirects=False).status_code == 403


def test_a_feeder_session_opens_nothing(client, estate):
    """Even with a browser session (as an OpenID Connect sign-in would make), a feeder
    reaches nothing: its role acts through tokens only."""
    from retentiond.registry.models import WebUser
    from retentiond.web.sessions import start_session

    state = client.app.state.web  # type: ignore[attr-defined]
    with estate.ctx.sessions.begin() as session:
        user = session.scalar(select(WebUser).where(WebUser.username == "feeder1"))
        cookie = start_session(session, user, method="oidc", now=state.clock.now(),
                               settings=state.settings)
    client.cookies.set(state.settings.session_cookie, cookie)
    r = client.get("/api/v1/me", follow_redirects=False)
    assert r.status_code == 403


# --- locators are checked by their system's connector, as records import checks them ---------

def _holding(tmp_path: Path) -> Path:
    """A SQLite holding database whose ``cases`` have an INTEGER key (a locator ``042`` would
    be coerced to 42 there)."""
    from sqlalchemy import create_engine, text

    db = tmp_path / "holding.db"
    engine = create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE cases (id INTEGER PRIMARY KEY, summary VARCHAR(50))"))
        conn.execute(text("INSERT INTO cases VALUES (42, 'synthetic')"))
    engine.dispose()
    return db


def _app_with_connectors(estate: Estate, policy: PolicySet, clock: FixedClock, tmp_path: Path,
                         connectors: dict) -> TestClient:
    from retentiond.config import Config

    cfg = web_config(estate.url, tmp_path)
    cfg = Config(source=cfg.source, raw={**cfg.raw, "connectors": connectors})
    app = create_app(cfg, policy=policy, clock=clock, sessions=estate.ctx.sessions)
    return TestClient(app, base_url="https://testserver")


def test_a_pushed_locator_its_connector_cannot_name_is_refused(estate, policy, clock, tmp_path):
    """``042`` for an INTEGER key would name row 42 of another record (issue 10, class 1): the
    push is refused whole, naming the item and the field, without echoing the locator, and
    nothing is applied; the exact locator is taken."""
    db = _holding(tmp_path)
    (tmp_path / "mis.url").write_text(f"sqlite:///{db}\n")
    connectors = {"mis": {"kind": "sql", "url_file": str(tmp_path / "mis.url"),
                          "table": "cases", "key_column": "id"}}
    with _app_with_connectors(estate, policy, clock, tmp_path, connectors) as client:
        bad = {"records": [{**referral("L-1"), "system": "mis", "locator": "42"},
                           {**referral("L-2"), "system": "mis", "locator": "042"},
                           {**referral("L-3"), "system": "mis", "locator": "+42"}]}
        refused = push(client, estate, "records", bad, key="loc-1")
        assert refused.status_code == 422, refused.text
        problems = refused.json()["problems"]
        assert [p.split(": ")[:2] for p in problems] == [["records[1]", "locator"],
                                                        ["records[2]", "locator"]]
        assert all("connector mis cannot name this locator exactly" in p for p in problems)
        assert all("042" not in p and "+42" not in p for p in problems)
        assert count(estate, Record, Record.record_key.like("L-%")) == 0
        good = {"records": [{**referral("L-1"), "system": "mis", "locator": "42"}]}
        taken = push(client, estate, "records", good, key="loc-2")
        assert taken.status_code == 200, taken.text
        assert record(estate, "L-1").locator == "42"


def test_connectors_that_cannot_be_built_refuse_the_push_and_keep_the_key(estate, policy, clock,
                                                                          tmp_path):
    """A broken ``[connectors]`` section is the service's fault: 503 in words, nothing
    applied, and the Idempotency-Key is not used up (a retry after the fix is carried out)."""
    connectors = {"mis": {"kind": "sql", "url_file": str(tmp_path / "missing.url"),
                          "table": "cases", "key_column": "id"}}
    with _app_with_connectors(estate, policy, clock, tmp_path, connectors) as client:
        body = {"records": [referral("L-9")]}
        refused = push(client, estate, "records", body, key="loc-9")
        assert refused.status_code == 503, refused.text
        assert "locators cannot be checked" in refused.json()["detail"]
        assert count(estate, Record, Record.record_key == "L-9") == 0
    with _app_with_connectors(estate, policy, clock, tmp_path, {}) as client:
        taken = push(client, estate, "records", body, key="loc-9")
        assert taken.status_code == 200, taken.text
        assert "Idempotent-Replayed" not in taken.headers
