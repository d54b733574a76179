"""Staged review in Debian's Chromium (issue 14): a service manager scoped to one school
approves stage 1, an IG officer stage 2, the case waits out its cooling-off (the clock moved
for the job that ends it), an IG officer cancels another during its cooling-off, and a third
is raised as an exception. Synthetic demo data only."""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from web_harness import CHROMIUM, browser, chromium, page, running_app, sign_in, staged_pack  # noqa: F401 (shared fixtures)

from retentiond.clock import FixedClock
from retentiond.lifecycle.cooling import end_cooling
from retentiond.lifecycle.groups import add_group, add_member, set_scope
from retentiond.lifecycle.review import approve
from retentiond.registry.models import Controller, Disposal, Record
from retentiond.web.accounts import add_user

pytestmark = pytest.mark.skipif(
    not os.path.exists(CHROMIUM) and os.environ.get("CI") != "true",
    reason=f"{CHROMIUM} is missing (./dev test installs Debian's chromium)")

SCHOOL, OTHER = "DEMO-SCH-01", "DEMO-SCH-02"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def served(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    work = tmp_path_factory.mktemp("stages")
    with running_app(work, template=sqlite_template, records=300,
                     policies=[staged_pack(work)]) as (base, estate):
        admin = dataclasses.replace(estate.ctx, actor="admin")
        add_user(admin, username="manager1", roles="approver", password=PASSWORD)
        add_user(admin, username="igofficer", roles="ig_officer,approver", password=PASSWORD)
        add_user(admin, username="igofficer2", roles="ig_officer,approver", password=PASSWORD)
        add_group(admin, "service-managers", label="Service managers")
        add_group(admin, "ig", label="Information governance")
        add_member(admin, "service-managers", "manager1")
        add_member(admin, "ig", "igofficer")
        add_member(admin, "ig", "igofficer2")
        set_scope(admin, "user", "manager1", controllers=[SCHOOL], categories=[])
        yield base, estate


def _cases(estate: Any, code: str, n: int) -> list[tuple[int, str]]:
    with estate.ctx.sessions() as s:
        return [(i, k) for i, k in s.execute(
            select(Disposal.id, Record.record_key).join(Record, Record.id == Disposal.record_id)
            .join(Controller, Controller.id == Record.controller_id)
            .where(Controller.code == code, Disposal.state == "pending_review",
                   Record.category == "education.pupil_record")
            .order_by(Disposal.id).limit(n))]


def _state(estate: Any, case: int) -> str:
    with estate.ctx.sessions() as s:
        return s.get_one(Disposal, case).state


def _banner(page: Any) -> str:
    return str(page.locator(".govuk-notification-banner").inner_text())


def _act(page: Any, base: str, key: str, reason: str, button: str) -> str:
    page.goto(f"{base}/records/{key}")
    page.get_by_label("Reason").fill(reason)
    page.get_by_role("button", name=button).click()
    return _banner(page)


def test_staged_review_with_scope_cooling_off_and_an_exception(served: Any, browser: Any,
                                                               page: Any) -> None:
    base, estate = served
    (first, first_key), (second, second_key), (third, third_key) = _cases(estate, SCHOOL, 3)
    ((_, elsewhere_key),) = _cases(estate, OTHER, 1)

    # A service manager, scoped to one school, approves stage 1.
    sign_in(page, base, "manager1")
    page.goto(f"{base}/queue?category=education.pupil_record&limit=500")
    queue = page.locator("main").inner_text()
    assert first_key in queue and elsewhere_key not in queue
    assert "Stage 1 of 2: service (group service-managers)" in queue
    assert page.goto(f"{base}/records/{elsewhere_key}").status == 404
    page.goto(f"{base}/records/{first_key}")
    assert "Waiting for Stage 1 of 2: service (group service-managers)" in \
        page.locator("#stage").inner_text()
    banner = _act(page, base, first_key, "checked with the school", "Approve this case")
    assert f"Approval recorded for case {first}: it now waits for Stage 2 of 2: ig " \
           "(group ig)" in banner
    # The manager cannot approve stage 2, and is not offered it.
    page.goto(f"{base}/records/{first_key}")
    assert page.get_by_role("button", name="Approve this case").count() == 0
    # Stage 1 of the second case too (by the same person: any one of the group).
    approve(dataclasses.replace(estate.ctx, actor="manager1"), [second], reason="checked")

    # An IG officer approves stage 2: the case cools off, visible in the queue and dashboard.
    ig = browser.new_context().new_page()
    ig.set_default_timeout(15_000)
    sign_in(ig, base, "igofficer")
    ig.goto(f"{base}/records/{first_key}")
    stage = ig.locator("#stage").inner_text()
    assert "Stage 2 of 2: ig (group ig)" in stage and "igofficer" in stage
    assert "manager1" in stage
    banner = _act(ig, base, first_key, "IG agrees", "Approve this case")
    assert f"Approval recorded for case {first}: it is approved, and waits until" in banner
    assert _state(estate, first) == "cooling_off"
    approve(dataclasses.replace(estate.ctx, actor="igofficer2"), [second], reason="agreed")
    ig.goto(f"{base}/queue?state=cooling_off")
    cooling = ig.locator("main").inner_text()
    assert first_key in cooling and second_key in cooling and "Cooling off until" in cooling
    ig.goto(f"{base}/dashboard")
    assert "cooling off" in ig.locator("#card-cooling-off").inner_text()

    # An IG officer cancels the second case during its cooling-off: back to review.
    banner = _act(ig, base, second_key, "the school asked us to wait",
                  "Cancel the cooling-off of this case")
    assert f"Cooling-off cancelled for case {second}" in banner
    assert _state(estate, second) == "pending_review"
    ig.goto(f"{base}/records/{second_key}")
    assert "Waiting for Stage 1 of 2" in ig.locator("#stage").inner_text()

    # The first waits out its cooling-off: nothing before the 7 days, approved after.
    at = dataclasses.replace(estate.ctx, clock=FixedClock(
        estate.ctx.clock.now() + dt.timedelta(days=6, hours=23)))
    assert end_cooling(at)["cooling_ended"] == 0
    assert _state(estate, first) == "cooling_off"
    later = dataclasses.replace(estate.ctx, clock=FixedClock(
        estate.ctx.clock.now() + dt.timedelta(days=7, minutes=1)))
    assert end_cooling(later)["cooling_ended"] == 1
    assert _state(estate, first) == "approved"
    ig.goto(f"{base}/records/{first_key}")
    history = ig.locator("main").inner_text()
    assert "Cooling-off ended: ready to be carried out" in history

    # The service manager raises the third as an exception; it goes back to the IG officer.
    banner = _act(page, base, third_key, "this pupil has a sibling case still open",
                  "Raise an exception on this case")
    assert f"Exception raised on case {third}" in banner
    assert _state(estate, third) == "exception"
    ig.goto(f"{base}/queue?state=exception")
    assert third_key in ig.locator("main").inner_text()
    ig.goto(f"{base}/records/{third_key}")
    text = ig.locator("main").inner_text()
    assert "Exception raised: back to the IG officer" in text
    assert "this pupil has a sibling case still open" in text
    assert ig.get_by_role("button", name="Send this case on to review").is_visible()
    # The rules in force say who approves what, and the wait.
    ig.goto(f"{base}/policy")
    assert ("2 stages: service (group service-managers), ig (group ig); then 7 days' "
            "cooling-off") in ig.locator("main").inner_text()
    ig.context.close()
