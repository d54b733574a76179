"""The review UI in headless Chromium (Playwright, Debian's /usr/bin/chromium): each role
signs in and walks its main journeys against the app served by uvicorn."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from web_harness import CHROMIUM, browser, chromium, issue_demo_certificates, page, running_app, sign_in  # noqa: F401 (shared fixtures)

from retentiond.registry.models import Controller, Disposal, Record

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true",
    reason=f"{CHROMIUM} is missing (./dev test installs Debian's chromium)")


SERIALS: dict[str, str] = {}


@pytest.fixture(scope="module")
def served(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    with running_app(tmp_path_factory.mktemp("web"), template=sqlite_template, records=300) as it:
        # Before any browser starts: signing PDFs runs its own asyncio loop, which cannot
        # nest inside Playwright's.
        SERIALS.update(issue_demo_certificates(it[1], tmp_path_factory.mktemp("keys")))
        yield it


@pytest.fixture
def serials(served: tuple[str, Any]) -> dict[str, str]:
    return SERIALS


#: How long a browser action may wait in these tests.
PAGE_TIMEOUT_MS = 10_000


def _pending(estate: Any, *, approvals: int, controller: str | None = None) -> list[tuple[int, str]]:
    from sqlalchemy import select

    with estate.ctx.sessions() as s:
        q = (select(Disposal.id, Record.record_key).join(Record, Record.id == Disposal.record_id)
             .join(Controller, Controller.id == Record.controller_id)
             .where(Disposal.state == "pending_review", Disposal.approvals_required == approvals)
             .order_by(Disposal.id))
        if controller:
            q = q.where(Controller.code == controller)
        return [(i, k) for i, k in s.execute(q)]


def _state(estate: Any, case: int) -> str:
    with estate.ctx.sessions() as s:
        return s.get_one(Disposal, case).state


def test_officer_defers_two_cases(served: tuple[str, Any], page: Any) -> None:
    """An IG officer selects two cases, gives a reason and a date, and defers them."""
    base, estate = served
    (a, _), (b, _) = _pending(estate, approvals=1)[:2]
    sign_in(page, base, "officer")
    page.goto(f"{base}/queue?sort=id")
    page.locator(f"#case-{a}").check()
    page.locator(f"#case-{b}").check()
    page.get_by_label("Reason").fill("case review pending with the school")
    until = dt.date(2027, 3, 31)
    page.locator("#until-day").fill(str(until.day))
    page.locator("#until-month").fill(str(until.month))
    page.locator("#until-year").fill(str(until.year))
    page.get_by_role("button", name="Defer selected").click()
    assert "Deferred 2 cases until 31 March 2027." in page.locator(".govuk-notification-banner").inner_text()
    assert _state(estate, a) == _state(estate, b) == "deferred"


def test_officer_cannot_approve_and_sees_an_error_summary(served: tuple[str, Any], page: Any) -> None:
    """An officer has no approve button; acting with nothing selected shows an error summary
    that links to the field."""
    base, _ = served
    sign_in(page, base, "officer")
    page.goto(f"{base}/queue")
    assert page.get_by_role("button", name="Approve selected").count() == 0
    page.get_by_role("button", name="Reject selected cases (keep the records)").click()
    summary = page.locator(".govuk-error-summary")
    assert "Select at least one case" in summary.inner_text()
    assert "Enter a reason" in summary.inner_text()


def test_two_approvers_approve_a_child_protection_case(served: tuple[str, Any], browser: Any) -> None:
    """A rule needing two approvals: the first approval leaves the case pending; a second,
    different approver completes it."""
    base, estate = served
    case, key = _pending(estate, approvals=2)[0]
    for who, expected in (("approver1", "pending_review"), ("approver2", "approved")):
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, base, who)
        page.goto(f"{base}/queue?sort=id&limit=200")
        page.locator(f"#case-{case}").check()
        page.get_by_label("Reason").fill(f"reviewed by {who}")
        page.get_by_role("button", name="Approve selected").click()
        assert f"Approval recorded for case {case}" in page.locator(".govuk-notification-banner").inner_text()
        assert _state(estate, case) == expected
        context.close()
    context = browser.new_context()
    page = context.new_page()
    sign_in(page, base, "auditor")
    page.goto(f"{base}/records/{key}")
    history = page.locator("table").last.inner_text()
    assert "approver1" in history and "approver2" in history and "Case approved" in history
    assert "Approval recorded (another approver needed)" in history
    context.close()


def test_approve_works_without_javascript(served: tuple[str, Any], browser: Any) -> None:
    """With JavaScript off the queue still selects and approves (plain forms)."""
    base, estate = served
    case, _ = _pending(estate, approvals=1)[-1]
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    sign_in(page, base, "approver1")
    page.goto(f"{base}/queue?sort=id&order=desc")
    page.locator(f"#case-{case}").check()
    page.get_by_label("Reason").fill("checked against the register")
    page.get_by_role("button", name="Approve selected").click()
    assert _state(estate, case) == "approved"
    context.close()


def test_place_and_lift_a_hold(served: tuple[str, Any], page: Any) -> None:
    """An officer places a hold on a record from the holds page, sees what it covers, lifts it."""
    base, estate = served
    case, key = _pending(estate, approvals=1, controller=None)[3]
    sign_in(page, base, "officer")
    page.goto(f"{base}/holds")
    page.get_by_label("One record (its record id)").check()
    page.get_by_label("Record id, subject reference, category, controller code or saved "
                      "filter name").fill(key)
    page.get_by_label("Type of hold").select_option("legal")
    page.locator("#reason").fill("litigation L-2026-7")
    page.get_by_role("button", name="Place hold").click()
    banner = page.locator(".govuk-notification-banner").inner_text()
    assert f"It covers record {key}: 1 record." in banner
    assert _state(estate, case) == "held"
    row = page.locator("tr", has_text=f"Record {key}")
    row.get_by_role("link").first.click()
    assert key in page.locator("main").inner_text()
    page.get_by_label("Reason for lifting").fill("the claim was withdrawn")
    page.get_by_role("button", name="Lift hold").click()
    assert "lifted" in page.locator(".govuk-notification-banner").inner_text()
    assert _state(estate, case) == "pending_review"


def test_officer_saves_a_queue_filter_and_places_a_hold_by_it(served: tuple[str, Any],
                                                              page: Any) -> None:
    """An officer saves the queue's filter under a name, places a hold by it from the saved
    filters page: exactly the matching pending cases are held; lifting returns them."""
    from sqlalchemy import select

    base, estate = served
    with estate.ctx.sessions() as s:
        controller, category = s.execute(
            select(Controller.code, Record.category).join(Record, Record.controller_id ==
                                                          Controller.id)
            .join(Disposal, Disposal.record_id == Record.id)
            .where(Disposal.state == "pending_review",
                   Controller.code.not_in(("DEMO-SCH-01", "DEMO-SCH-02")))
            .order_by(Disposal.id).limit(1)).one()

    def cases() -> dict[int, str]:
        with estate.ctx.sessions() as s:
            return {i: st for i, st in s.execute(
                select(Disposal.id, Disposal.state).join(Record, Record.id == Disposal.record_id)
                .join(Controller, Controller.id == Record.controller_id)
                .where(Controller.code == controller, Record.category == category,
                       Disposal.state.in_(("pending_review", "held"))))}

    before = cases()
    assert before and set(before.values()) == {"pending_review"}
    sign_in(page, base, "officer")
    page.goto(f"{base}/queue?state=pending_review&controller={controller}&category={category}")
    page.locator("summary", has_text="Save this filter").click()
    page.get_by_label("Name for this filter").fill("browser journey filter")
    page.locator('form[action="/filters"] button').click()
    assert "saved" in page.locator(".govuk-notification-banner").inner_text()
    page.goto(f"{base}/filters")
    row = page.locator("tr", has_text="browser journey filter")
    label = estate.ctx.policy.category_label(category)
    assert f"Records of controller {controller} in category \u201c{label}\u201d" in row.inner_text()
    row.get_by_role("link", name="Place a hold by this filter").click()
    assert page.get_by_label("A saved filter (its name)").is_checked()
    page.get_by_label("Type of hold").select_option("legal")
    page.locator("#reason").fill("litigation L-2026-9")
    page.get_by_role("button", name="Place hold").click()
    banner = page.locator(".govuk-notification-banner").inner_text()
    assert "It covers saved filter “browser journey filter”" in banner
    assert cases() == dict.fromkeys(before, "held")
    page.locator("tr", has_text="Saved filter “browser journey filter”").get_by_role(
        "link").first.click()
    assert f"Records of controller {controller} in category \u201c{label}\u201d" in \
        page.locator("main").inner_text()
    page.get_by_label("Reason for lifting").fill("the claim was settled")
    page.get_by_role("button", name="Lift hold").click()
    assert cases() == before


def test_controller_cannot_see_another_controllers_data(served: tuple[str, Any], page: Any) -> None:
    """A school sees only its own cases; another school's record is 'not found' even by URL,
    and the holds and audit pages are closed to it."""
    base, estate = served
    _, other_key = _pending(estate, approvals=1, controller="DEMO-SCH-02")[0]
    _, own_key = _pending(estate, approvals=1, controller="DEMO-SCH-01")[0]
    sign_in(page, base, "school1")
    page.goto(f"{base}/queue?state=")
    text = page.locator("main").inner_text()
    assert "DEMO-SCH-01" in text and "DEMO-SCH-02" not in text
    response = page.goto(f"{base}/records/{other_key}")
    assert response.status == 404 and "Page not found" in page.content()
    assert page.goto(f"{base}/records/{own_key}").status == 200
    assert page.goto(f"{base}/holds").status == 403
    assert page.goto(f"{base}/audit").status == 403
    assert page.goto(f"{base}/api/v1/records/{other_key}").status == 404


def test_auditor_reads_but_has_no_actions(served: tuple[str, Any], page: Any) -> None:
    """An auditor sees the dashboard chart and the queue, with no action buttons, and signs out."""
    base, _ = served
    sign_in(page, base, "auditor")
    page.goto(f"{base}/dashboard")
    assert page.locator("svg[role=img] title").first.text_content().startswith("Records falling due")
    page.goto(f"{base}/queue")
    assert page.get_by_role("button", name="Approve selected").count() == 0
    assert page.get_by_role("button", name="Defer selected").count() == 0
    page.get_by_role("button", name="Sign out").click()
    assert page.url.endswith("/login")
    assert page.goto(f"{base}/queue").url.startswith(f"{base}/login")


def test_keyboard_reaches_the_queue_actions(served: tuple[str, Any], page: Any) -> None:
    """The skip link is the first stop, and the action buttons can be reached by Tab."""
    base, _ = served
    sign_in(page, base, "officer")
    page.goto(f"{base}/queue")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent").strip() == "Skip to main content"
    seen = set()
    for _ in range(200):
        page.keyboard.press("Tab")
        seen.add(page.evaluate("document.activeElement.textContent || ''").strip())
        if "Defer selected cases" in seen:
            break
    assert "Defer selected cases" in seen


def test_controller_downloads_and_acknowledges_its_certificate(
        served: tuple[str, Any], serials: dict[str, str], page: Any) -> None:
    """A school opens its certificate, downloads the signed PDF, acknowledges it, and cannot
    open another school's certificate by its address."""
    base, _ = served
    sign_in(page, base, "school1")
    page.goto(f"{base}/certificates")
    assert serials["DEMO-SCH-02"] not in page.locator("main").inner_text()
    page.get_by_role("link", name=serials["DEMO-SCH-01"], exact=True).click()
    with page.expect_download() as info:
        page.get_by_role("button", name="Download the signed PDF").click()
    download = info.value
    assert download.suggested_filename == f"{serials['DEMO-SCH-01']}.pdf"
    assert Path(download.path()).read_bytes().startswith(b"%PDF")
    page.get_by_role("button", name="Acknowledge this certificate").click()
    assert "acknowledgement is recorded" in page.locator(".govuk-notification-banner").inner_text()
    assert page.goto(f"{base}/certificates/{serials['DEMO-SCH-02']}").status == 404


def test_select_all_with_javascript(served: tuple[str, Any], page: Any) -> None:
    """With JavaScript, 'select all on this page' ticks every case on the page (and GOV.UK
    Frontend's script loads without errors)."""
    base, _ = served
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    sign_in(page, base, "officer")
    page.goto(f"{base}/queue?limit=25")
    page.get_by_label("Select all on this page").check()
    assert page.locator("input[name=ids]:checked").count() == 25
    assert not errors
