"""Screenshots of the dashboard, queue and record pages for docs/ (synthetic demo data).

    .venv/bin/python tests/e2e/screenshots.py docs/img
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from sqlalchemy import select
from web_harness import chromium, running_app, sign_in

from retentiond.lifecycle.review import approve
from retentiond.registry.models import Disposal, Record


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
        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            sign_in(page, base, "officer")
            for name, path in (("dashboard", "/dashboard"), ("queue", "/queue?limit=25"),
                               ("record", f"/records/{key}")):
                page.goto(base + path)
                page.screenshot(path=str(out / f"{name}.png"), full_page=True)
                print(out / f"{name}.png")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/img"))
