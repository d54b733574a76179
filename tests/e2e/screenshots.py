"""Screenshots of the dashboard, queue, record and holds pages for docs/ (synthetic demo data).

    .venv/bin/python tests/e2e/screenshots.py docs/img
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from sqlalchemy import select
from web_harness import chromium, running_app, sign_in

from retentiond.lifecycle.filters import save_filter
from retentiond.lifecycle.holds import place_hold
from retentiond.lifecycle.review import approve
from retentiond.registry.models import Controller, Disposal, Record


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, running_app(Path(tmp), records=3000) as (base, estate):
        with estate.ctx.sessions() as s:
            case, key = s.execute(
                select(Disposal.id, Record.record_key).join(Record, Record.id == Disposal.record_id)
                .where(Record.category == "education.pupil_record", Disposal.state == "pending_review")
                .order_by(Disposal.id).limit(1)).one()
        from dataclasses import replace
        approve(replace(estate.ctx, actor="approver1"), [case], reason="checked against the MIS")
        # A hold by a saved filter, so that the holds page shows one beside the others.
        with estate.ctx.sessions() as s:
            code = s.scalars(select(Controller.code).order_by(Controller.code).limit(1)).one()
        officer = replace(estate.ctx, actor="officer")
        save_filter(officer, name="Referrals of one school, due by 2027",
                    criteria={"controller": code, "category": "safeguarding.referral",
                              "due_to": "2027-12-31"})
        place_hold(officer, scope="filter:Referrals of one school, due by 2027", hold_type="complaint",
                   reason="ICO complaint about the school's referral records (synthetic)")
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            sign_in(page, base, "officer")
            for name, path in (("dashboard", "/dashboard"), ("queue", "/queue?limit=25"),
                               ("record", f"/records/{key}"), ("holds", "/holds")):
                page.goto(base + path)
                page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                print(out / f"{name}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
