"""Subject and controller holds are matched against each record's own subject and controller.

Found by the benchmark harness (bench/raw.py checks that evaluate queues exactly what the
hand-written SQL does): the scalar subqueries inside the hold EXISTS were not correlated, so a
subject or controller hold was compared with an arbitrary record's subject and controller.
"""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import select

from retentiond.ingest.controllers import import_controllers
from retentiond.ingest.records import import_records
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.holds import lift_hold, place_hold
from retentiond.registry.models import Disposal, Record


def _seed(ctx, tmp_path: Path) -> None:
    controllers = tmp_path / "controllers.csv"
    with controllers.open("w", newline="") as fh:
        csv.writer(fh).writerows([("code", "name", "email"),
                                  ("SCH-A", "Synthetic School A", "a@school.example"),
                                  ("SCH-B", "Synthetic School B", "b@school.example")])
    import_controllers(ctx, controllers)
    records = tmp_path / "records.csv"
    with records.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(("record_id", "category", "controller", "subject_ref", "opened_on"))
        # Safeguarding referrals reported in 2019: all due since 2025.
        for n, controller in ((1, "SCH-A"), (2, "SCH-A"), (3, "SCH-B"), (4, "SCH-A")):
            w.writerow((f"R-{n}", "safeguarding.referral", controller, f"S-{n}", "2019-01-01"))
    import_records(ctx, records)


def _cases(ctx) -> dict[str, str]:
    with ctx.sessions() as session:
        return dict(session.execute(
            select(Record.record_key, Disposal.state).join(Disposal, Disposal.record_id == Record.id)
        ).all())


def test_evaluate_skips_records_under_subject_and_controller_holds(ctx, tmp_path):
    """Only the records that no subject or controller hold covers are queued."""
    _seed(ctx, tmp_path)
    place_hold(ctx, scope="subject:S-1", hold_type="legal", reason="synthetic claim")
    place_hold(ctx, scope="controller:SCH-B", hold_type="complaint", reason="synthetic complaint")
    evaluate(ctx, ctx.clock.today())
    assert _cases(ctx) == {"R-2": "pending_review", "R-4": "pending_review"}


def test_lifting_one_of_two_holds_keeps_the_case_held(ctx, tmp_path):
    """A held case stays held while a subject hold still covers it after another is lifted."""
    _seed(ctx, tmp_path)
    evaluate(ctx, ctx.clock.today())
    place_hold(ctx, scope="subject:S-2", hold_type="legal", reason="synthetic claim")
    other = place_hold(ctx, scope="record:R-2", hold_type="police", reason="synthetic request")
    lift_hold(ctx, other.id, reason="request withdrawn")
    cases = _cases(ctx)
    assert cases["R-2"] == "held"
    assert cases["R-1"] == cases["R-3"] == cases["R-4"] == "pending_review"
