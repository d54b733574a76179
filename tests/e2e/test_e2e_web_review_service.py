"""The review service as an IG officer lives in it (issue 15), in Debian's Chromium: failed
disposals acted on, tasks for a person confirmed (issue 10), actions from the record page,
words not codes, totals and page numbers, one date input, views kept out of a record's
history, users added from a form, the records behind a policy preview's counts, and the phone
layout."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from web_harness import (  # noqa: F401 (shared fixtures)
    CHROMIUM,
    CLOCK_AT,
    ROOT,
    browser,
    chromium,
    fail_cases,
    open_tasks,
    page,
    running_app,
    sign_in,
)

from retentiond.registry.models import AuditEvent, Disposal, Record

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true",
    reason=f"{CHROMIUM} is missing (./dev test installs Debian's chromium)")


@pytest.fixture(scope="module")
def served(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_app(tmp_path_factory.mktemp("svc"), template=sqlite_template,
                     records=300) as (base, estate):
        failed = fail_cases(estate, 3)
        tasks = open_tasks(estate, tmp_path_factory.mktemp("tasks"))
        yield base, estate, failed, tasks


def _state(estate: Any, case: int) -> str:
    with estate.ctx.sessions() as s:
        return s.get_one(Disposal, case).state


def _banner(page: Any) -> str:
    return str(page.locator(".govuk-notification-banner").inner_text())


def test_failed_cases_show_why_and_can_be_retried_or_sent_back(served: Any, page: Any) -> None:
    """The failed queue shows each case's reason beside its state and offers only 'try
    again' and 'send back to review'; a record page says why at the top and acts on its case,
    coming back to the queue as it was filtered."""
    base, estate, failed, _ = served
    (first, _), (second, second_key), _ = failed
    sign_in(page, base, "officer")
    page.goto(f"{base}/queue?state=failed&sort=id")
    row = page.locator("tr", has=page.locator(f"#case-{first}"))
    assert "Failed" in row.inner_text()
    assert "no connector is configured for system" in row.inner_text()
    buttons = [b.strip() for b in page.locator(".rtd-actions button").all_inner_texts()]
    assert buttons == ["Try selected cases again", "Send selected cases back to review"]
    page.locator(f"#case-{first}").check()
    page.get_by_label("Reason").fill("connector for the MIS configured")
    page.get_by_role("button", name="Try selected cases again").click()
    assert f"Case {first} will be tried again" in _banner(page)
    assert _state(estate, first) == "approved"
    assert "state=failed" in page.url

    page.get_by_role("link", name=second_key).click()
    failure = page.locator("#failure").inner_text()
    assert "The disposal failed" in failure and "no connector is configured" in failure
    page.get_by_label("Reason").fill("the locator is wrong; asking the school")
    page.get_by_role("button", name="Send this case back to review").click()
    assert f"Sent case {second} back to review" in _banner(page)
    assert re.search(r"/queue\?state=failed&.*sort=id", page.url), page.url
    assert _state(estate, second) == "pending_review"


def test_approve_from_the_record_page_and_return_to_the_filtered_queue(served: Any,
                                                                       page: Any) -> None:
    """An approver reads a record's explanation and approves it there; the queue comes back
    with the same filters, and a refusal (no reason) is shown on the record page itself."""
    base, estate, _, _ = served
    with estate.ctx.sessions() as s:
        case, key = s.execute(
            select(Disposal.id, Record.record_key).join(Record, Record.id == Disposal.record_id)
            .where(Disposal.state == "pending_review", Disposal.approvals_required == 1,
                   Record.category == "safeguarding.referral")
            .order_by(Disposal.id)).first()
    sign_in(page, base, "approver1")
    page.goto(f"{base}/queue?category=safeguarding.referral&sort=id&limit=100")
    page.get_by_role("link", name=key).click()
    assert page.get_by_role("heading", name=f"What to do about case {case}").is_visible()
    page.get_by_role("button", name="Approve this case").click()
    # Refused: the record page again (the form's own address), with the error summary.
    assert page.get_by_role("heading", name=f"Record {key}").is_visible()
    assert "Enter a reason" in page.locator(".govuk-error-summary").inner_text()
    page.get_by_label("Reason").fill("retention period over; checked with the school")
    page.get_by_role("button", name="Approve this case").click()
    assert f"Approval recorded for case {case}: it is approved." in _banner(page)
    assert "category=safeguarding.referral" in page.url and "sort=id" in page.url
    assert "limit=100" in page.url
    assert _state(estate, case) == "approved"
    # An approved case offers no approval, in the queue or on its record page.
    page.goto(f"{base}/queue?state=approved")
    assert page.get_by_role("button", name="Approve selected cases").count() == 0
    page.goto(f"{base}/records/{key}")
    assert page.get_by_role("button", name="Approve this case").count() == 0


def test_words_not_codes(served: Any, page: Any) -> None:
    """Categories, states, hold types, actions and audit events read as words; the record
    page keeps the category code in its detail; a refused page says what is missing in words."""
    base, _, _, _ = served
    sign_in(page, base, "officer")
    page.goto(f"{base}/queue?state=any&limit=200")
    table = page.locator("table").inner_text()
    assert "Pupil educational record" in table and "education.pupil_record" not in table
    assert "pending_review" not in page.locator("main").inner_text()
    options = page.locator("#state option").all_inner_texts()
    assert "Pending review" in options and "pending_review" not in options
    key = page.locator("tbody tr a").first.inner_text().split("\n")[0].strip()
    page.goto(f"{base}/records/{key}")
    detail = page.locator("dl").first.inner_text()
    assert re.search(r"\n[a-z_]+\.[a-z_]+", detail), detail  # the code, under its label
    assert "1 case(s)" not in page.content()
    page.goto(f"{base}/holds")
    assert "subject_access" not in page.locator("table").inner_text()
    assert "Subject access request" in page.locator("#hold_type").inner_text()
    page.goto(f"{base}/audit")
    assert "Signed in" in page.locator("table").inner_text()
    assert "UserSignedIn" not in page.locator("table").inner_text()
    page.goto(f"{base}/policy")
    assert "the date it was opened (or the report made)" in page.locator("table").inner_text()
    page.context.clear_cookies()
    sign_in(page, base, "auditor")
    assert page.goto(f"{base}/users").status == 403
    text = page.locator("main").inner_text()
    assert "Your role does not let you manage users" in text and "manage_users" not in text


def test_queue_totals_page_numbers_and_the_date_input(served: Any, page: Any) -> None:
    """'Cases 1 to 25 of N' and 'Page 1 of M'; Next goes to 'Cases 26 to 50', page 2; the
    due-date filter is a GOV.UK date input, and a date that is not a date is an error
    linked to its day box."""
    base, estate, _, _ = served
    with estate.ctx.sessions() as s:
        total = s.scalar(select(func.count()).select_from(Disposal)
                         .where(Disposal.state == "pending_review"))
        upto = dt.date(2021, 12, 31)
        within = s.scalar(select(func.count()).select_from(Disposal).where(
            Disposal.state == "pending_review", Disposal.due_on <= upto))
    assert total > 50 and 0 < within < total
    sign_in(page, base, "officer")
    page.goto(f"{base}/queue?limit=25")
    pages = -(-total // 25)
    assert page.locator("#results").inner_text() == f"Cases 1 to 25 of {total}"
    assert f"Page 1 of {pages}" in page.locator("main").inner_text()
    page.get_by_role("link", name="Next page").click()
    assert page.locator("#results").inner_text() == f"Cases 26 to 50 of {total}"
    assert f"Page 2 of {pages}" in page.locator("main").inner_text()
    page.get_by_role("link", name="Previous page").click()
    assert page.locator("#results").inner_text() == f"Cases 1 to 25 of {total}"

    page.locator("#due_to-day").fill("31")
    page.locator("#due_to-month").fill("12")
    page.locator("#due_to-year").fill("2021")
    page.get_by_role("button", name="Apply filters").click()
    assert page.locator("#results").inner_text().endswith(f" of {within}")
    assert page.locator("#due_to-year").input_value() == "2021"
    dues = page.locator("td[data-label=Due]").all_inner_texts()
    assert all(dt.datetime.strptime(d.strip(), "%d %B %Y").date() <= upto for d in dues)

    page.locator("#due_from-day").fill("31")
    page.locator("#due_from-month").fill("2")
    page.locator("#due_from-year").fill("2021")
    page.get_by_role("button", name="Apply filters").click()
    summary = page.locator(".govuk-error-summary")
    assert "The 'due from' date must be a real date" in summary.inner_text()
    assert summary.get_by_role("link").first.get_attribute("href") == "#due_from-day"
    assert page.locator("#due_from-day").input_value() == "31"


def test_views_stay_out_of_a_records_history_until_asked_for(served: Any, page: Any) -> None:
    """Viewing a record is audited every time, but its history shows views only after 'Show
    views'."""
    base, estate, _, _ = served
    with estate.ctx.sessions() as s:
        key = s.scalars(select(Record.record_key).order_by(Record.id.desc())).first()
    sign_in(page, base, "auditor")
    for _ in range(3):
        page.goto(f"{base}/records/{key}")
    assert "Record viewed" not in page.content()
    assert "it has been viewed 3 times" in page.locator("main").inner_text(), \
        page.locator("main").inner_text()
    page.get_by_role("link", name="Show views").click()
    assert page.locator("#history ~ table").inner_text().count("Record viewed") == 4
    with estate.ctx.sessions() as s:
        views = s.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.kind == "RecordViewed", AuditEvent.entity_id == key))
    assert views == 4


def test_dashboard_tiles_say_what_they_count(served: Any, page: Any) -> None:
    """'Cases held' and 'Holds in force' are told apart, and the failed tile leads to the
    failed cases with their reasons."""
    base, _, _, _ = served
    sign_in(page, base, "officer")
    page.goto(f"{base}/dashboard")
    main = page.locator("main").inner_text()
    assert "cases held" in main and "due, but stopped by a hold" in main
    assert "Holds in force" in main and "holds, not cases" in main
    assert "Why it failed" in main and "no connector is configured" in main


def test_admin_adds_a_user_who_can_then_sign_in(served: Any, browser: Any, page: Any) -> None:
    """An admin adds an approver from the form (mismatched passwords and no role are refused,
    field by field); the new user signs in and has the approver's menu."""
    base, _, _, _ = served
    sign_in(page, base, "admin")
    page.goto(f"{base}/users")
    page.get_by_role("button", name="Add a user").click()
    page.get_by_label("User name").fill("new.approver")
    page.get_by_label("Password", exact=True).fill("a long enough password")
    page.get_by_label("Password again").fill("a different password")
    page.get_by_role("button", name="Add user").click()
    summary = page.locator(".govuk-error-summary").inner_text()
    assert "Choose at least one role" in summary and "The two passwords are different" in summary
    assert page.get_by_label("User name").input_value() == "new.approver"
    page.get_by_label("Approver").check()
    page.get_by_label("Password", exact=True).fill("a long enough password")
    page.get_by_label("Password again").fill("a long enough password")
    page.get_by_role("button", name="Add user").click()
    assert "new.approver is added as an approver." in _banner(page)
    other = browser.new_context().new_page()
    sign_in(other, base, "new.approver", "a long enough password")
    other.goto(f"{base}/queue")
    assert other.get_by_role("button", name="Approve selected cases").count() == 1
    other.context.close()


def test_policy_preview_lists_the_records_behind_its_counts(served: Any, page: Any) -> None:
    """A changed pack's preview lists, under each category, the records that would move
    with their dates now and then."""
    base, _, _, _ = served
    pack = (ROOT / "policies" / "isa-default.toml").read_text(encoding="utf-8")
    changed = pack.replace('period = "6y"', 'period = "3y"', 1)
    sign_in(page, base, "officer")
    page.goto(f"{base}/policy")
    page.get_by_label("Or paste the pack").fill(changed)
    page.get_by_role("button", name="Preview").click()
    summary = page.locator("summary", has_text="Which safeguarding referral records would move")
    summary.click()
    details = page.locator("details", has=summary)
    rows = details.locator("tbody tr")
    assert rows.count() > 0
    first = rows.first.inner_text()
    assert "Earlier" in first and "DEMO-R-" in first


def test_on_a_phone_the_queue_stacks_and_the_chart_is_narrow(served: Any, browser: Any) -> None:
    """At 390 pixels the queue's rows are cards naming each field, the page does not
    scroll sideways, and the chart is drawn a row a month with its legend as text."""
    base, _, _, _ = served
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    sign_in(page, base, "officer")
    page.goto(f"{base}/queue")
    cell = page.locator("td[data-label=Due]").first
    label = page.evaluate("(el) => getComputedStyle(el, '::before').content", cell.element_handle())
    assert label == '"Due"' and cell.is_visible()
    assert page.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
    page.goto(f"{base}/dashboard")
    assert page.locator(".rtd-chart__narrow svg").is_visible()
    assert not page.locator(".rtd-chart__wide svg").is_visible()
    assert page.locator(".rtd-legend").is_visible()
    font = page.evaluate("""() => {
        const svg = document.querySelector('.rtd-chart__narrow svg');
        return svg.getBoundingClientRect().width / svg.viewBox.baseVal.width * 13; }""")
    assert font >= 12, font  # the chart's 13-pixel text is not scaled below 12 pixels
    context.close()


def test_a_second_approval_by_the_same_person_is_not_offered(served: Any, page: Any) -> None:
    """On a two-approver case's page, the approver who has approved sees no approve button
    but is told another approver must approve; a different approver is offered it."""
    from dataclasses import replace

    from retentiond.lifecycle.review import approve

    base, estate, _, _ = served
    with estate.ctx.sessions() as s:
        case, key = s.execute(
            select(Disposal.id, Record.record_key).join(Record, Record.id == Disposal.record_id)
            .where(Disposal.state == "pending_review", Disposal.approvals_required == 2)
            .order_by(Disposal.id.desc())).first()
    approve(replace(estate.ctx, actor="approver1"), [case], reason="first look")
    sign_in(page, base, "approver1")
    page.goto(f"{base}/records/{key}")
    assert page.get_by_role("button", name="Approve this case").count() == 0
    assert "You have approved it: another approver must too." in page.locator("main").inner_text()
    page.context.clear_cookies()
    sign_in(page, base, "approver2")
    page.goto(f"{base}/records/{key}")
    assert page.get_by_role("button", name="Approve this case").count() == 1


def test_an_officer_confirms_a_task_from_the_tasks_page(served: Any, page: Any,
                                                        browser: Any) -> None:
    """From the navigation's Tasks, an officer sees each kind with what to do next, opens a
    manual task, is told which field is missing, confirms the destruction with the date
    input and comes back to Tasks with the banner; a record whose data was not found says
    that this app cannot ask its system again (no connector here), and is sent back to
    review. On a phone the Tasks page stacks and does not scroll sideways."""
    base, estate, _, tasks = served
    (manual, manual_key), _ = tasks["manual"]
    [(missing, missing_key)] = tasks["not_found"]
    sign_in(page, base, "officer")
    page.goto(f"{base}/dashboard")
    assert page.locator("#tasks-card .rtd-card__number").inner_text() == "3"
    page.get_by_role("link", name="Tasks", exact=True).first.click()
    main = page.locator("main").inner_text()
    assert "Data not found" in main and "Manual destruction to confirm" in main
    assert "Nothing was deleted" in main and missing_key in main and manual_key in main
    page.get_by_role("link", name=f"Confirm destruction for record {manual_key}").click()
    assert page.locator("#task h2").inner_text() == \
        "Manual destruction to confirm: what to do next"
    page.get_by_label("Who destroyed it").fill("Shred-It Synthetic Ltd")
    page.get_by_role("button", name="Confirm destruction").click()
    summary = page.locator(".govuk-error-summary").inner_text()
    assert "Enter the date it was destroyed" in summary and "Enter how it was destroyed" in summary
    assert page.get_by_label("Who destroyed it").input_value() == "Shred-It Synthetic Ltd"
    page.locator(".govuk-error-summary a", has_text="Enter how it was destroyed").click()
    assert page.evaluate("document.activeElement.id") == "method"
    today = CLOCK_AT.date()
    page.get_by_label("Day").fill(str(today.day))
    page.get_by_label("Month").fill(str(today.month))
    page.get_by_label("Year").fill(str(today.year))
    page.get_by_label("How it was destroyed").fill("cross-cut shredding on site")
    page.get_by_role("button", name="Confirm destruction").click()
    assert page.url.endswith("/tasks")
    assert f"Destruction confirmed for case {manual}" in _banner(page)
    assert _state(estate, manual) == "executed"

    page.get_by_role("link", name=f"Confirm what happened to it, or send it back for record "
                                  f"{missing_key}").click()
    assert "no connector for" in page.locator("#task-problem").inner_text()
    page.get_by_label("Why it goes back to review").fill("the folder was renamed: import again")
    page.get_by_role("button", name="Send back to review").click()
    assert f"Sent case {missing} back to review" in _banner(page)
    assert _state(estate, missing) == "pending_review"

    context = browser.new_context(viewport={"width": 320, "height": 640})
    phone = context.new_page()
    sign_in(phone, base, "officer")
    phone.goto(f"{base}/tasks")
    cell = phone.locator("td[data-label=Location]").first
    label = phone.evaluate("(el) => getComputedStyle(el, '::before').content",
                           cell.element_handle())
    assert label == '"Location"' and cell.is_visible()
    assert phone.evaluate("document.scrollingElement.scrollWidth <= innerWidth")
    context.close()
