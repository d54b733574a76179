"""Tasks for a person in the web UI and the API (issue 10, item 2): the Tasks page groups the
cases pending confirmation by kind; the record page's forms confirm what happened to data not
found, send it back, or confirm a manual destruction; every refusal is an error on the field
or the form and changes nothing. Real registry (SQLite and PostgreSQL), a real folder and a
real SQLite holding database behind the app's own configured connectors."""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from execution_support import (
    DUE_DOB,
    connector_config,
    connectors,
    make_files,
    make_holding,
    queue_and_approve,
    seed,
    states,
)
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from web_support import PASSWORD, cheap_hashing, sign_in

from retentiond.config import Config
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.execute import execute_due
from retentiond.lifecycle.holds import place_hold
from retentiond.registry.models import AuditEvent, Disposal, DisposalExecution, Record
from retentiond.web.accounts import add_user
from retentiond.web.app import create_app
from retentiond.web.sessions import create_token

EVIDENCE = "destroyed earlier by the school's records clean-up of March 2024 (log ref 118)"
USERS = {"officer": ("ig_officer", None), "officer2": ("ig_officer", None),
         "approver1": ("approver", None), "auditor": ("auditor", None),
         "school1": ("controller", "SCH-01")}


@dataclasses.dataclass
class Tasked:
    ctx: Context
    url: str
    tmp: Path
    holding: str
    cases: dict[str, int]
    tokens: dict[str, str]

    def config(self, *, with_connectors: bool = True) -> Config:
        cfg = connector_config(self.tmp, self.holding, self.tmp / "files", self.tmp / "drop",
                               self.tmp / "passwords")
        raw: dict[str, Any] = {"web": {"cookie_secure": True}}
        if with_connectors:
            raw["connectors"] = cfg.raw["connectors"]
        return Config(source=cfg.source, database_url=self.url, raw=raw,
                      pseudonym_key=b"k" * 32,
                      system_names={"files": "Social care case files",
                                    "mis": "School MIS", "paper": "Paper archive"})

    def state(self, key: str) -> str:
        return states(self.ctx)[key]


@pytest.fixture
def tasked(ctx: Context, database_url: str, tmp_path: Path) -> Tasked:
    """Two records never there (a folder, a row), two paper records (manual tasks) and one
    whose rule's action is review: all due, approved and run once."""
    holding = f"sqlite:///{tmp_path / 'holding.db'}"
    make_holding(holding, ["U1"])
    make_files(tmp_path / "files", ["case-a"])
    seed(ctx, tmp_path, [
        {"record_id": "F-NEVER", "system": "files", "locator": "case-typo",
         "date_of_birth": DUE_DOB},
        {"record_id": "S-NEVER", "system": "mis", "locator": "U9", "date_of_birth": DUE_DOB},
        {"record_id": "P-1", "system": "paper", "locator": "box 12, shelf 3",
         "date_of_birth": DUE_DOB},
        {"record_id": "P-2", "system": "paper", "locator": "box 13", "date_of_birth": DUE_DOB},
        {"record_id": "R-1", "system": "mis", "locator": "U1", "date_of_birth": DUE_DOB},
    ])
    cases = queue_and_approve(ctx)
    with ctx.sessions.begin() as session:
        session.execute(update(Disposal).where(Disposal.id == cases["R-1"])
                        .values(action="review"))
        session.execute(update(Record).where(Record.record_key == "R-1")
                        .values(due_action="review"))
    registry = connectors(tmp_path, holding)
    try:
        result = execute_due(ctx, registry, owner="t", batch_size=10, lease_s=60)
    finally:
        registry.close()
    assert (result.not_found, result.pending_confirmation) == (2, 3)
    cheap_hashing()
    tokens = {}
    for name, (roles, controller) in USERS.items():
        add_user(ctx, username=name, roles=roles, controller=controller, password=PASSWORD)
        tokens[name] = create_token(dataclasses.replace(ctx, actor=name), name, name="tests")
    return Tasked(ctx=ctx, url=database_url, tmp=tmp_path, holding=holding, cases=cases,
                  tokens=tokens)


@pytest.fixture
def client(tasked: Tasked) -> Iterator[TestClient]:
    app = create_app(tasked.config(), policy=tasked.ctx.policy, clock=tasked.ctx.clock,
                     sessions=tasked.ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _post(c: TestClient, csrf: str, case: int, verb: str, **data: str) -> Any:
    return c.post(f"/tasks/{case}/{verb}", data={"csrf_token": csrf, **data},
                  follow_redirects=False)


def _summary(html: str) -> list[str]:
    """The error summary's items, as a reader sees them."""
    found = re.search(r'govuk-error-summary__list">(.*?)</ul>', html, re.S)
    assert found is not None, "no error summary"
    return [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", li)).strip()
            for li in re.findall(r"<li>(.*?)</li>", found.group(1), re.S)]


def _executed_events(tasked: Tasked, case: int) -> int:
    with tasked.ctx.sessions() as s:
        return s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.entity == "disposal", AuditEvent.entity_id == str(case),
            AuditEvent.kind.in_(("DisposalExecuted", "DisposalNotFoundConfirmed")))) or 0


def test_tasks_page_groups_the_cases_by_kind_for_an_officer_only(client: TestClient,
                                                                 tasked: Tasked) -> None:
    """An officer's Tasks page lists each kind with the record, the system's display name,
    the locator, since when and what to do next; the navigation and the dashboard link it
    with the count. A controller and an approver are refused it and never see the link."""
    sign_in(client, "officer")
    page = client.get("/tasks")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page.text))
    for heading in ("Data not found", "Manual destruction to confirm", "Review action"):
        assert heading in text
    assert text.index("Data not found") < text.index("Manual destruction") < \
        text.index("Review action")
    for shown in ("F-NEVER", "Social care case files", "case-typo", "School MIS", "U9",
                  "Paper archive", "box 12, shelf 3", "R-1", "Nothing was deleted",
                  "confirm who destroyed it, on which date and how", "5 cases wait"):
        assert shown in text, shown
    assert "22 November 2026" in text  # since: the run's day
    assert 'href="/records/F-NEVER?from=tasks#task"' in page.text
    assert '<a class="govuk-header__link' in page.text or 'href="/tasks"' in page.text
    dash = client.get("/dashboard").text
    assert 'id="tasks-card"' in dash and re.search(r'tasks-card"><span class="rtd-card__number">5<',
                                                   dash)
    api = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {tasked.tokens['officer']}"})
    assert api.json()["counts"] == {"not_found": 2, "manual": 2, "review": 1}
    for who in ("school1", "approver1"):
        sign_in(client, who)
        r = client.get("/tasks")
        assert r.status_code == 403 and "Your role does not let you" in r.text
        assert 'href="/tasks"' not in client.get("/dashboard").text
        assert client.get("/api/v1/tasks", headers={
            "Authorization": f"Bearer {tasked.tokens[who]}"}).status_code == 403


def test_confirm_not_found_refuses_bad_evidence_and_present_data_then_confirms(
        client: TestClient, tasked: Tasked) -> None:
    """Evidence too short, or only invisible characters, is an error on its field; data
    that is in the holding system now is refused in words; nothing changes until a valid
    confirmation, which goes back to the Tasks page with a banner and is recorded with the
    person's words. The same words again change nothing."""
    case = tasked.cases["F-NEVER"]
    csrf = sign_in(client, "officer")
    page = client.get("/records/F-NEVER?from=tasks")
    assert f'action="/tasks/{case}/confirm-not-found"' in page.text
    assert 'href="/tasks" class="govuk-back-link"' in page.text
    r = _post(client, csrf, case, "confirm-not-found", evidence="gone", **{"from": "tasks"})
    assert r.status_code == 400
    assert _summary(r.text) == ["What happened to it is required: at least 10 visible characters"]
    assert 'id="evidence-error"' in r.text and ">gone</textarea>" in r.text
    r = _post(client, csrf, case, "confirm-not-found", evidence="\u200b\u2060 " * 10)
    assert r.status_code == 400 and _summary(r.text) == ["Enter what happened to it"]
    # 8 visible characters among 24: the zero-width ones do not count
    r = _post(client, csrf, case, "confirm-not-found", evidence="\u200bgo\u200b" * 4)
    assert r.status_code == 400 and "at least 10 visible characters" in _summary(r.text)[0]
    (tasked.tmp / "files" / "case-typo").mkdir()
    r = _post(client, csrf, case, "confirm-not-found", evidence=EVIDENCE)
    assert r.status_code == 400
    assert _summary(r.text) == [f"Case {case}: the data is in files now: it was not destroyed "
                                "earlier; send the case back for review instead"]
    assert tasked.state("F-NEVER") == "pending_confirmation"
    (tasked.tmp / "files" / "case-typo").rmdir()
    r = _post(client, csrf, case, "confirm-not-found", evidence=EVIDENCE, **{"from": "tasks"})
    assert r.status_code == 303 and r.headers["location"] == "/tasks"
    banner = client.get("/tasks").text
    assert f"Confirmed for case {case}" in banner and "govuk-notification-banner--success" in banner
    assert tasked.state("F-NEVER") == "executed"
    with tasked.ctx.sessions() as s:
        row = s.scalars(select(DisposalExecution)
                        .where(DisposalExecution.disposal_id == case)).one()
    assert (row.outcome, row.outcome_note, row.confirmed_by) == \
        ("confirmed_not_found", EVIDENCE, "officer")
    r = _post(client, csrf, case, "confirm-not-found", evidence=EVIDENCE)
    assert r.status_code == 303 and r.headers["location"].startswith("/records/F-NEVER?")
    assert _executed_events(tasked, case) == 1


def test_send_back_needs_a_reason_and_returns_the_case_to_review(client: TestClient,
                                                                 tasked: Tasked) -> None:
    """Send back: an empty or invisible reason is an error on its field; with one, the case
    is pending review again, its approvals void, and the record page says so."""
    case = tasked.cases["S-NEVER"]
    csrf = sign_in(client, "officer")
    r = _post(client, csrf, case, "send-back", send_back_reason="\u200b ")
    assert r.status_code == 400 and _summary(r.text) == ["Enter why it goes back to review"]
    assert tasked.state("S-NEVER") == "pending_confirmation"
    r = _post(client, csrf, case, "send-back", send_back_reason="locator mistyped: U2")
    assert r.status_code == 303 and r.headers["location"].startswith("/records/S-NEVER?")
    page = client.get(r.headers["location"]).text
    assert f"Sent case {case} back to review" in page
    assert tasked.state("S-NEVER") == "pending_review"
    r = _post(client, csrf, case, "send-back", send_back_reason="again")
    assert r.status_code == 400
    assert _summary(r.text) == [f"Case {case} is not a finding of data not found (it is "
                                "pending review)"]


def test_confirm_destruction_checks_each_field_then_executes(client: TestClient,
                                                             tasked: Tasked) -> None:
    """Confirm destruction: each missing field, a date in the future and a date before the
    task was opened are errors naming the field; nothing changes; then it is executed with
    the evidence, and the form of data not found is refused for it."""
    case = tasked.cases["P-1"]
    csrf = sign_in(client, "officer")
    page = client.get("/records/P-1").text
    assert f'action="/tasks/{case}/confirm-destruction"' in page and 'id="destroyed_on-day"' in page
    r = _post(client, csrf, case, "confirm-destruction")
    assert r.status_code == 400
    assert _summary(r.text) == ["Enter who destroyed it", "Enter the date it was destroyed",
                                "Enter how it was destroyed"]
    assert 'href="#destroyed_on-day"' in r.text
    when = {"destroyed_on-day": "23", "destroyed_on-month": "11", "destroyed_on-year": "2026"}
    r = _post(client, csrf, case, "confirm-destruction", destroyed_by="Shred-It Ltd",
              method="cross-cut shredding", **when)
    assert r.status_code == 400
    assert _summary(r.text) == ["The date it was destroyed must be today or in the past"]
    r = _post(client, csrf, case, "confirm-destruction", destroyed_by="Shred-It Ltd",
              method="cross-cut shredding", **{**when, "destroyed_on-day": "1"})
    assert r.status_code == 400
    assert _summary(r.text) == ["The date it was destroyed 1 November 2026 is before the task "
                                "was opened (22 November 2026): destruction without the approved "
                                "task is an incident to report"]
    assert 'value="Shred-It Ltd"' in r.text
    r = _post(client, csrf, case, "confirm-not-found", evidence=EVIDENCE)
    assert r.status_code == 400 and "is not a finding of data not found" in _summary(r.text)[0]
    assert tasked.state("P-1") == "pending_confirmation"
    r = _post(client, csrf, case, "confirm-destruction", destroyed_by="Shred-It Ltd",
              method="cross-cut shredding", certificate_no="SH-2026-0042",
              **{**when, "destroyed_on-day": "22"}, **{"from": "tasks"})
    assert r.status_code == 303 and r.headers["location"] == "/tasks"
    assert f"Destruction confirmed for case {case}" in client.get("/tasks").text
    with tasked.ctx.sessions() as s:
        row = s.scalars(select(DisposalExecution)
                        .where(DisposalExecution.disposal_id == case)).one()
    assert (row.destroyed_by, str(row.destroyed_on), row.certificate_no, row.confirmed_by) == \
        ("Shred-It Ltd", "2026-11-22", "SH-2026-0042", "officer")


def test_a_hold_a_controller_and_an_unknown_case_are_refused(client: TestClient,
                                                             tasked: Tasked) -> None:
    """A hold placed on a task's record stops every form, in words; a controller user gets
    403 for its own record's task; an unknown case is 404; a post without the CSRF token is
    refused. Nothing changes."""
    place_hold(tasked.ctx, scope="record:P-2", hold_type="legal", reason="claim notified")
    place_hold(tasked.ctx, scope="record:S-NEVER", hold_type="legal", reason="claim notified")
    csrf = sign_in(client, "officer")
    p2, s_never = tasked.cases["P-2"], tasked.cases["S-NEVER"]
    r = _post(client, csrf, p2, "confirm-destruction", destroyed_by="Shred-It Ltd",
              method="shredding", **{"destroyed_on-day": "22", "destroyed_on-month": "11",
                                     "destroyed_on-year": "2026"})
    assert r.status_code == 400
    assert _summary(r.text) == [f"Case {p2} is held: a hold covers the record, so nothing may "
                                "be confirmed or sent back until the hold is lifted"]
    for verb, field in (("confirm-not-found", "evidence"), ("send-back", "send_back_reason")):
        r = _post(client, csrf, s_never, verb, **{field: EVIDENCE})
        assert r.status_code == 400 and "is held: a hold covers the record" in r.text
    assert 'action="/tasks/' not in client.get("/records/P-2").text  # no form while held
    r = client.post(f"/tasks/{tasked.cases['P-1']}/confirm-destruction",
                    data={"destroyed_by": "x", "method": "y"}, follow_redirects=False)
    assert r.status_code == 403
    assert _post(client, csrf, 2**40, "send-back", send_back_reason="x").status_code == 404
    csrf = sign_in(client, "school1")
    assert 'action="/tasks/' not in client.get("/records/F-NEVER").text
    r = _post(client, csrf, tasked.cases["F-NEVER"], "confirm-not-found", evidence=EVIDENCE)
    assert r.status_code == 403 and "Your role does not let you" in r.text
    assert {k: tasked.state(k) for k in ("P-1", "P-2", "S-NEVER", "F-NEVER")} == {
        "P-1": "pending_confirmation", "P-2": "held", "S-NEVER": "held",
        "F-NEVER": "pending_confirmation"}


def test_without_connectors_the_form_says_so_instead_of_failing(tasked: Tasked) -> None:
    """An app whose configuration has no connectors cannot ask the holding system again: the
    record page says so in place of the evidence form, a post is refused in the same words,
    and sending back and confirming a manual destruction still work."""
    app = create_app(tasked.config(with_connectors=False), policy=tasked.ctx.policy,
                     clock=tasked.ctx.clock, sessions=tasked.ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        csrf = sign_in(c, "officer")
        page = c.get("/records/F-NEVER").text
        assert 'id="task-problem"' in page and "no connector for Social care case files" in page
        assert 'name="evidence"' not in page
        r = _post(c, csrf, tasked.cases["F-NEVER"], "confirm-not-found", evidence=EVIDENCE)
        assert r.status_code == 400 and "no connector for Social care case files" in \
            _summary(r.text)[0]
        assert tasked.state("F-NEVER") == "pending_confirmation"
        r = _post(c, csrf, tasked.cases["P-1"], "confirm-destruction", destroyed_by="Shred-It",
                  method="shredding", **{"destroyed_on-day": "22", "destroyed_on-month": "11",
                                         "destroyed_on-year": "2026"})
        assert r.status_code == 303 and tasked.state("P-1") == "executed"


def test_two_sessions_of_one_officer_confirm_at_once_and_one_evidence_wins(
        tasked: Tasked) -> None:
    """The same officer in two browser sessions posts different evidence for one task at
    the same moment, for three tasks: each time exactly one confirmation is recorded, the
    other is refused with the form's error, and the evidence stored is the accepted one."""
    app = create_app(tasked.config(), policy=tasked.ctx.policy, clock=tasked.ctx.clock,
                     sessions=tasked.ctx.sessions)
    when = {"destroyed_on-day": "22", "destroyed_on-month": "11", "destroyed_on-year": "2026"}
    with TestClient(app, base_url="https://testserver") as a, \
            TestClient(app, base_url="https://testserver") as b:
        csrf_a, csrf_b = sign_in(a, "officer"), sign_in(b, "officer")
        for key in ("P-1", "P-2", "R-1"):
            case = tasked.cases[key]
            answers: dict[str, int] = {}
            barrier = threading.Barrier(2)

            def confirm(c: TestClient, csrf: str, who: str, case: int = case,
                        barrier: threading.Barrier = barrier,
                        answers: dict[str, int] = answers) -> None:
                barrier.wait()
                r = _post(c, csrf, case, "confirm-destruction", destroyed_by=who,
                          method="shredding", **when)
                answers[who] = r.status_code

            threads = [threading.Thread(target=confirm, args=(a, csrf_a, "Contractor A")),
                       threading.Thread(target=confirm, args=(b, csrf_b, "Contractor B"))]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(answers.values()) == [303, 400], (key, answers)
            winner = next(w for w, code in answers.items() if code == 303)
            with tasked.ctx.sessions() as s:
                row = s.scalars(select(DisposalExecution)
                                .where(DisposalExecution.disposal_id == case)).one()
            assert row.destroyed_by == winner
            assert _executed_events(tasked, case) == 1
            assert tasked.state(key) == "executed"


def _api(c: TestClient, tasked: Tasked, who: str, case: int, verb: str, body: dict) -> Any:
    return c.post(f"/api/v1/disposals/{case}/{verb}", json=body,
                  headers={"Authorization": f"Bearer {tasked.tokens[who]}"})


def test_api_lists_tasks_and_closes_them_with_the_same_refusals(client: TestClient,
                                                                tasked: Tasked) -> None:
    """GET /api/v1/tasks lists every kind with the system's display name; confirm-not-found,
    send-back and confirm-destruction answer 422 naming the field for bad input, 409 in
    words for a refusal (data present, a hold, the wrong kind), 404 for an unknown case and
    403 for a controller or an approver; then each closes its task."""
    auth = {"Authorization": f"Bearer {tasked.tokens['auditor']}"}
    assert client.get("/api/v1/tasks", headers=auth).status_code == 403
    listed = client.get("/api/v1/tasks?kind=not_found",
                        headers={"Authorization": f"Bearer {tasked.tokens['officer']}"}).json()
    assert [(t["record_id"], t["kind"], t["system"], t["system_name"], t["locator"])
            for t in listed["items"]] == [
        ("F-NEVER", "not_found", "files", "Social care case files", "case-typo"),
        ("S-NEVER", "not_found", "mis", "School MIS", "U9")]
    f_never, s_never, p1 = (tasked.cases[k] for k in ("F-NEVER", "S-NEVER", "P-1"))
    for who in ("school1", "approver1"):
        assert _api(client, tasked, who, f_never, "confirm-not-found",
                    {"evidence": EVIDENCE}).status_code == 403
    for bad in ("short", "\u200b" * 40, "   "):
        r = _api(client, tasked, "officer", f_never, "confirm-not-found", {"evidence": bad})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "evidence"]
    r = _api(client, tasked, "officer", f_never, "confirm-not-found",
             {"evidence": "destroyed\x07 earlier by someone"})
    assert r.status_code == 409 and r.json()["detail"] == "evidence contains a control character"
    (tasked.tmp / "files" / "case-typo").mkdir()
    r = _api(client, tasked, "officer", f_never, "confirm-not-found", {"evidence": EVIDENCE})
    assert r.status_code == 409 and "the data is in files now" in r.json()["detail"]
    assert "(send-back)" in r.json()["detail"]
    (tasked.tmp / "files" / "case-typo").rmdir()
    r = _api(client, tasked, "officer", p1, "confirm-not-found", {"evidence": EVIDENCE})
    assert r.status_code == 409 and "not a finding of data not found" in r.json()["detail"]
    assert _api(client, tasked, "officer", 2**40, "confirm-not-found",
                {"evidence": EVIDENCE}).status_code == 404
    r = _api(client, tasked, "officer", f_never, "confirm-not-found", {"evidence": EVIDENCE})
    assert r.status_code == 200
    assert (r.json()["state"], r.json()["confirmed_by"]) == ("executed", "officer")

    r = _api(client, tasked, "officer", s_never, "send-back", {"reason": "\u200b"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "reason"]
    r = _api(client, tasked, "officer", s_never, "send-back", {"reason": "locator corrected"})
    assert r.status_code == 200 and r.json()["state"] == "pending_review"

    body = {"destroyed_by": "Shred-It Ltd", "destroyed_on": "2026-11-22",
            "method": "cross-cut shredding", "certificate_no": "SH-1"}
    r = _api(client, tasked, "officer", p1, "confirm-destruction", {**body, "method": " "})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "method"]
    r = _api(client, tasked, "officer", p1, "confirm-destruction",
             {**body, "destroyed_on": "2026-12-25"})
    assert r.status_code == 409 and r.json()["detail"] == \
        "destroyed_on 2026-12-25 is in the future"
    place_hold(tasked.ctx, scope="record:P-2", hold_type="legal", reason="claim")
    r = _api(client, tasked, "officer", tasked.cases["P-2"], "confirm-destruction", body)
    assert r.status_code == 409 and "is held: a hold covers the record" in r.json()["detail"]
    r = _api(client, tasked, "officer", p1, "confirm-destruction", body)
    assert r.status_code == 200 and r.json()["state"] == "executed"
    assert _api(client, tasked, "officer", p1, "confirm-destruction", body).status_code == 200
    r = _api(client, tasked, "officer", p1, "confirm-destruction",
             {**body, "destroyed_by": "Someone else"})
    assert r.status_code == 409 and "only a case pending confirmation" in r.json()["detail"]
    assert _executed_events(tasked, p1) == 1
    counts = client.get("/api/v1/tasks", headers={
        "Authorization": f"Bearer {tasked.tokens['officer']}"}).json()["counts"]
    assert counts == {"not_found": 0, "manual": 0, "review": 1}  # P-2 is held, not a task now
    paths = client.get("/api/v1/openapi.json").json()["paths"]
    for path in ("/api/v1/tasks", "/api/v1/disposals/{disposal_id}/confirm-not-found",
                 "/api/v1/disposals/{disposal_id}/send-back",
                 "/api/v1/disposals/{disposal_id}/confirm-destruction"):
        assert path in paths
