"""Screenshots of every page of the review service, at 1280 and 390 pixels wide, for docs/
(synthetic demo data; each as the role that uses it).

    .venv/bin/python tests/e2e/screenshots.py docs/img

Writes ``NAME-1280.png`` and ``NAME-390.png`` for each page in ``PAGES``. Look at every one
after running it: this script only takes them.
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import select
from web_harness import (
    ROOT,
    chromium,
    fail_cases,
    issue_demo_certificates,
    running_app,
    sign_in,
    staged_pack,
)

from retentiond.lifecycle.filters import save_filter
from retentiond.lifecycle.groups import add_group, add_member, set_scope
from retentiond.lifecycle.holds import place_hold
from retentiond.lifecycle.review import approve
from retentiond.registry.models import Controller, Disposal, Record

WIDTHS = (1280, 390)


def _setup(estate: Any, workdir: Path) -> dict[str, str]:
    """Something on every page: an approval, failed cases, holds, a saved filter, certificates."""
    serials = issue_demo_certificates(estate, workdir / "keys")
    failed = fail_cases(estate, 3, skip=5)
    with estate.ctx.sessions() as s:
        case, key = s.execute(
            select(Disposal.id, Record.record_key).join(Record, Record.id == Disposal.record_id)
            .where(Record.category == "child_protection.case", Disposal.state == "pending_review")
            .order_by(Disposal.id).limit(1)).one()
        code = s.scalars(select(Controller.code).order_by(Controller.code).limit(1)).one()
    approve(replace(estate.ctx, actor="approver1"), [case], reason="checked against the MIS")
    officer = replace(estate.ctx, actor="officer")
    save_filter(officer, name="Referrals of one school, due by 2027",
                criteria={"controller": code, "category": "safeguarding.referral",
                          "due_to": "2027-12-31"})
    hold = place_hold(officer, scope="filter:Referrals of one school, due by 2027",
                      hold_type="complaint",
                      reason="ICO complaint about the school's referral records (synthetic)")
    place_hold(officer, scope="category:looked_after.case_record", hold_type="inquiry",
               reason="Independent inquiry moratorium (synthetic)")
    return {"record": key, "failed": failed[0][1], "hold": str(hold.id),
            "serial": serials["DEMO-SCH-01"], **_staged(estate)}


def _staged(estate: Any) -> dict[str, str]:
    """Staged review (the pack's pupil-record rule has two stages and a cooling-off): review
    groups, one case waiting for its second stage, one cooling off."""
    admin = replace(estate.ctx, actor="admin")
    add_group(admin, "service-managers", label="Service managers")
    add_group(admin, "ig", label="Information governance")
    add_member(admin, "service-managers", "approver1")
    add_member(admin, "ig", "approver2")
    set_scope(admin, "group", "service-managers", controllers=["DEMO-SCH-01"], categories=[])
    with estate.ctx.sessions() as s:
        (waiting, _), (cooling, cooling_key) = s.execute(
            select(Disposal.id, Record.record_key).join(Record, Record.id == Disposal.record_id)
            .join(Controller, Controller.id == Record.controller_id)
            .where(Record.category == "education.pupil_record", Controller.code == "DEMO-SCH-01",
                   Disposal.state == "pending_review")
            .order_by(Disposal.id).limit(2)).all()
    approve(replace(estate.ctx, actor="approver1"), [waiting, cooling],
            reason="service review: past retention, nothing open")
    approve(replace(estate.ctx, actor="approver2"), [cooling], reason="IG review")
    return {"cooling": cooling_key}


def pages(ids: dict[str, str]) -> list[tuple[str, str | None, str]]:
    """(file name, user, path) of every page."""
    return [
        ("login", None, "/login"),
        ("dashboard", "officer", "/dashboard"),
        ("queue", "officer", "/queue?limit=10"),
        ("queue-failed", "officer", "/queue?state=failed"),
        ("queue-staged", "approver2", "/queue?category=education.pupil_record&limit=10"),
        ("queue-cooling-off", "officer", "/queue?state=cooling_off"),
        ("record-cooling-off", "officer", f"/records/{ids['cooling']}"),
        ("tasks", "officer", "/tasks"),
        ("groups", "admin", "/groups"),
        ("record", "approver1", f"/records/{ids['record']}"),
        ("record-failed", "officer", f"/records/{ids['failed']}"),
        ("holds", "officer", "/holds"),
        ("hold", "officer", f"/holds/{ids['hold']}"),
        ("filters", "officer", "/filters"),
        ("policy", "officer", "/policy"),
        ("certificates", "officer", "/certificates"),
        ("certificate", "officer", f"/certificates/{ids['serial']}"),
        ("audit", "auditor", "/audit?limit=15"),
        ("account", "officer", "/account"),
        ("users", "admin", "/users"),
        ("user-new", "admin", "/users/new"),
        ("controller-dashboard", "school1", "/dashboard"),
        ("not-allowed", "auditor", "/users"),
    ]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, \
            running_app(Path(tmp), records=3000,
                        policies=[staged_pack(Path(tmp))]) as (base, estate):
        ids = _setup(estate, Path(tmp))
        changed = (ROOT / "policies" / "isa-default.toml").read_text(encoding="utf-8") \
            .replace('period = "6y"', 'period = "5y"', 1)
        with chromium() as browser:
            contexts: dict[str | None, Any] = {}
            for width in WIDTHS:
                for name, user, path in pages(ids):
                    if user not in contexts:
                        contexts[user] = browser.new_context()
                        if user is not None:
                            sign_in(contexts[user].new_page(), base, user)
                    page = contexts[user].new_page()
                    page.set_viewport_size({"width": width, "height": 900})
                    page.goto(base + path)
                    shot(page, out / f"{name}-{width}.png")
                    page.close()
                page = contexts["officer"].new_page()
                page.set_viewport_size({"width": width, "height": 900})
                page.goto(base + "/policy")
                page.get_by_label("Or paste the pack").fill(changed)
                page.get_by_role("button", name="Preview").click()
                shot(page, out / f"policy-preview-{width}.png", clip="#preview-result")
                page.close()


def shot(page: Any, path: Path, clip: str | None = None) -> None:
    """A full-page screenshot (or of one element), reduced to 256 colours: a third of the
    size, and text stays sharp."""
    from PIL import Image

    if clip:
        page.locator(clip).screenshot(path=str(path))
    else:
        page.screenshot(path=str(path), full_page=True)
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)
    print(path)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
