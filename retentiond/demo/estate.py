"""Synthetic demonstration data: controllers, an agreement, records, a hold.

Nothing here is personal data: controllers are numbered demo schools, subjects are opaque
``DEMO-S-`` references, and dates are drawn at random. Data goes in through the real
importers, so the demo exercises the same validation as a council's files.
"""

from __future__ import annotations

import csv
import datetime as dt
import random
import tempfile
from pathlib import Path

from sqlalchemy import func, select

from retentiond.ingest.controllers import import_controllers
from retentiond.ingest.records import import_records
from retentiond.lifecycle.agreements import add_agreement
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.holds import place_hold
from retentiond.registry.models import Agreement, Hold, Record

CONTROLLERS = [
    ("DEMO-LA", "Demo City Council (Children's Services)", "ig@council.example"),
    *[(f"DEMO-SCH-{n:02d}", f"Demo Primary School {n}", f"dpo{n}@school.example")
      for n in range(1, 7)],
    ("DEMO-TRUST", "Demo Academy Trust", "dpo@trust.example"),
]


def _day(rng: random.Random, start: int, end: int) -> dt.date:
    first = dt.date(start, 1, 1).toordinal()
    return dt.date.fromordinal(rng.randint(first, dt.date(end, 12, 31).toordinal()))


#: Where each category's records live in the demo's holding systems (demo/holding.py makes
#: them): pupil records in the MIS, referrals in their own table, case records as folders of
#: case files, or (drawn one time in three for case records) on paper.
_SYSTEMS = {
    "education.pupil_record": ("mis", "DEMO-UPN-{n:06d}"),
    "safeguarding.referral": ("referrals", "DEMO-REF-{n:06d}"),
    "child_protection.case": ("case-files", "child-protection/{n:06d}"),
    "looked_after.case_record": ("case-files", "looked-after/{n:06d}"),
}


def _held_in(category: str, draw: str, n: int) -> tuple[str, str]:
    """(system, locator) of record ``n``. ``draw`` is the random choice the demo always made,
    kept so that the same seed still gives the same dates."""
    if draw == "paper-store" and _SYSTEMS[category][0] == "case-files":
        return "paper-store", f"BOX-{n // 40:03d}/FILE-{n:06d}"
    system, locator = _SYSTEMS[category]
    return system, locator.format(n=n)


def _row(rng: random.Random, n: int, today: dt.date) -> dict[str, str]:
    category = rng.choices(
        ["education.pupil_record", "safeguarding.referral", "child_protection.case",
         "looked_after.case_record"], weights=[60, 20, 12, 8])[0]
    controller = rng.choice(CONTROLLERS)[0]
    system, locator = _held_in(category, rng.choice(["mis", "case-files", "paper-store"]), n)
    row = {"record_id": f"DEMO-R-{n:06d}", "category": category, "controller": controller,
           "system": system, "locator": locator,
           "subject_ref": f"DEMO-S-{rng.randint(1, max(10, n // 2)):06d}",
           "date_of_birth": "", "date_of_death": "", "opened_on": "", "closed_on": "",
           "flags": "", "agreement": "DEMO-ISA" if controller != "DEMO-LA" else ""}
    if category == "education.pupil_record":
        born = _day(rng, 1996, 2020)
        row["date_of_birth"] = born.isoformat()
        # Pupil records open when the child starts school, at 4 or 5, and never in the future.
        row["opened_on"] = min(born + dt.timedelta(days=rng.randint(4 * 365, 5 * 365)),
                               today).isoformat()
    elif category == "safeguarding.referral":
        row["opened_on"] = _day(rng, 2016, today.year).isoformat()
    elif category == "child_protection.case":
        opened = _day(rng, 1978, 2020)
        row["opened_on"] = opened.isoformat()
        if rng.random() < 0.8:
            row["closed_on"] = min(opened + dt.timedelta(days=rng.randint(30, 2000)),
                                   today).isoformat()
    else:
        born = _day(rng, 1945, 2012)
        row["date_of_birth"] = born.isoformat()
        if rng.random() < 0.1:
            row["date_of_death"] = min(born + dt.timedelta(days=rng.randint(400, 9000)),
                                       today).isoformat()
    # A subject's dates are stated once; the demo gives each record its own subject when it
    # carries dates, so that random dates never contradict each other.
    if row["date_of_birth"] or row["date_of_death"]:
        row["subject_ref"] = f"DEMO-S-{n:06d}"
    if rng.random() < 0.05:
        row["flags"] = "sen"
    return row


def load_demo(ctx: Context, *, records: int = 2000, seed: int = 2026) -> str:
    """Load the demo estate into an empty registry (idempotent: re-running updates it)."""
    rng = random.Random(seed)
    today = ctx.clock.today()
    with tempfile.TemporaryDirectory(prefix="retentiond-demo-") as tmp:
        ctl = Path(tmp) / "controllers.csv"
        with ctl.open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["code", "name", "email"])
            w.writerows(CONTROLLERS)
        import_controllers(ctx, ctl)
        with ctx.sessions() as session:
            has_isa = session.scalar(select(Agreement.id).where(Agreement.code == "DEMO-ISA"))
        if not has_isa:
            add_agreement(ctx, code="DEMO-ISA", title="Demo ISA: educational indicators",
                          notice="1m", action="return")
        rec = Path(tmp) / "records.csv"
        with rec.open("w", newline="") as fh:
            fields = ["record_id", "category", "controller", "system", "locator", "subject_ref",
                      "date_of_birth", "date_of_death", "opened_on", "closed_on", "flags",
                      "agreement"]
            w2 = csv.DictWriter(fh, fieldnames=fields)
            w2.writeheader()
            for n in range(1, records + 1):
                w2.writerow(_row(rng, n, today))
        result = import_records(ctx, rec)
    with ctx.sessions() as session:
        total = session.scalar(select(func.count()).select_from(Record))
        held = session.scalar(select(Record.record_key).where(
            Record.due_on <= today, Record.category == "safeguarding.referral").limit(1))
    hold_note = ""
    with ctx.sessions() as session:
        already = held and session.scalar(select(Hold.id).where(
            Hold.scope_kind == "record", Hold.scope_value == held, Hold.lifted_at.is_(None)))
    if held and not already:
        place_hold(ctx, scope=f"record:{held}", hold_type="subject_access",
                   reason="Demo: a subject access request is open for this record")
        hold_note = f"; placed a demo hold on {held}"
    return (f"demo data: {len(CONTROLLERS)} controllers, {result.rows} records imported "
            f"({result.created} new), {total} in the registry{hold_note}")
