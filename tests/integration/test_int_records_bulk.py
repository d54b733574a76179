"""The bulk path of ``records import`` (issue 6): each record written once with its decision,
through COPY on PostgreSQL and prepared executemany on SQLite. Awkward values survive the
trip, a refusal deep in a file written over several batches leaves the registry untouched, a
re-import of existing keys keeps what it must, and the decision written with each row is the
one the policy engine makes from the stored facts."""

from __future__ import annotations

import csv
import datetime as dt
import random
import threading

import pytest
from int_support import (
    D,
    cp_case,
    load_records,
    pupil,
    records_by_key,
    referral,
    seed_controllers,
    snapshot,
    write_records,
)
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from retentiond.ingest import ImportRefused
from retentiond.ingest import records as records_mod
from retentiond.ingest.records import import_records
from retentiond.lifecycle.agreements import add_agreement, terminate_agreement
from retentiond.lifecycle.recompute import fact_query, facts_from_row, stored_decision
from retentiond.policy import decide
from retentiond.registry.models import AuditEvent, Record, Subject

FORMATS = [pytest.param(".csv", id="csv"), pytest.param(".jsonl", id="jsonl")]


@pytest.fixture
def base(ctx, tmp_path):
    seed_controllers(ctx, tmp_path)
    add_agreement(ctx, code="ISA-01", title="Synthetic ISA", notice="1m", action="return")
    return ctx


#: Values that text COPY must escape, CSV must quote, or that look like COPY's own NULL marker.
#: (Newlines and tabs inside a value are refused at import since issue 11, item 9: see
#: ``test_line_breaks_and_tabs_are_refused`` and tests/integration/test_int_hostile_imports.py.)
AWKWARD = {
    "comma": "box 1, shelf 2",
    "quotes": 'the "blue" file \'B\'',
    "backslash": r"C:\records\2019\n-not-a-newline",
    "null-marker": r"\N",
    "dot": "\\.",
    "unicode": "Ysgol Gynradd Aberhonddu, café № 5 – ☂",
}


@pytest.mark.parametrize("suffix", FORMATS)
def test_awkward_values_are_stored_exactly(base, tmp_path, suffix):
    """Commas, quotes, newlines, tabs, backslashes, COPY's NULL marker and non-ASCII text
    are stored exactly; empty columns are stored as NULL; dates are dates."""
    rows = []
    for n, (name, value) in enumerate(AWKWARD.items()):
        rows.append(referral(f'R-{name}-"q"\\{n}', "2019-02-28", system=value[:100],
                             locator=value, subject_ref=f"S\\{name}-ü"))
    rows.append(referral("R-empty", "2019-02-28", system="", locator="", subject_ref=""))
    result = load_records(base, tmp_path, rows, suffix=suffix)
    assert (result.rows, result.created) == (len(rows), len(rows))
    recs = records_by_key(base)
    for n, (name, value) in enumerate(AWKWARD.items()):
        rec = recs[f'R-{name}-"q"\\{n}']
        assert (rec.locator, rec.system) == (value, value[:100]), name
        assert rec.opened_on == D(2019, 2, 28)
        assert rec.due_on == D(2025, 2, 28)
    empty = recs["R-empty"]
    assert (empty.system, empty.locator, empty.subject_id) == (None, None, None)
    assert empty.closed_on is None and empty.event_on is None and empty.flags == ""
    with base.sessions() as session:
        refs = set(session.scalars(select(Subject.ref)))
    assert refs == {f"S\\{name}-ü" for name in AWKWARD}


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize("value", ["first line\nsecond line", "first\r\nsecond", "left\tright"])
def test_line_breaks_and_tabs_are_refused(base, tmp_path, suffix, value):
    """A line break or a tab inside a locator (which COPY and CSV could carry) is a control
    character: the file is refused, naming the line and field."""
    with pytest.raises(ImportRefused, match=r":\d: locator: holds U\+000[9AD] "):
        load_records(base, tmp_path, [referral("R-1", "2019-02-28", locator=value)],
                     suffix=suffix)


def test_refusal_deep_in_a_large_file_leaves_the_registry_untouched(base, tmp_path,
                                                                      monkeypatch):
    """A bad row after many batches were already sent (COPY on PostgreSQL) refuses the
    whole file: no record, subject or import run of it is left, earlier imports are as they
    were, and the next import on the same connection pool works."""
    monkeypatch.setattr(records_mod, "BATCH", 500)
    load_records(base, tmp_path, [pupil("R-OLD-1", "2001-01-01", subject="S-SHARED"),
                                  referral("R-OLD-2", "2010-01-01")])
    before = snapshot(base)
    rows = [pupil(f"R-{n}", "2005-06-07", subject=f"S-{n // 3}") for n in range(3000)]
    # Re-imports of earlier keys and a changed subject date, written before the bad row.
    rows[10] = pupil("R-OLD-1", "2001-01-02", subject="S-SHARED")
    rows[11] = referral("R-OLD-2", "2011-01-01")
    rows.insert(2600, referral("R-BAD", "2019-02-30"))
    path = write_records(tmp_path / "large.csv", rows)
    with pytest.raises(ImportRefused) as err:
        import_records(base, path)
    assert err.value.problems == [
        f"{path}:2602: opened_on: '2019-02-30' is not a real date (day is out of range for "
        "month)"]
    assert snapshot(base) == before
    del rows[2600]
    path = write_records(tmp_path / "large-fixed.csv", rows)
    result = import_records(base, path)
    assert (result.rows, result.created, result.updated) == (3000, 2998, 2)
    recs = records_by_key(base)
    assert len(recs) == 3000
    assert recs["R-OLD-1"].due_on == D(2026, 1, 2)
    assert recs["R-2999"].due_on == D(2030, 6, 7)


@pytest.mark.parametrize("suffix", FORMATS)
def test_reimport_of_existing_keys_across_batches(base, tmp_path, monkeypatch, suffix):
    """Re-imported keys, mixed with new ones over several batches, are updated in place:
    same id and creation time, facts replaced, decision recomputed, review outcomes kept."""
    monkeypatch.setattr(records_mod, "BATCH", 3)
    first = [referral(f"R-{n}", "2015-01-01", system="paper", locator=f"box {n}")
             for n in range(6)]
    load_records(base, tmp_path, first, suffix=suffix)
    before = records_by_key(base)
    with base.sessions.begin() as session:
        session.execute(update(Record).where(Record.record_key == "R-1")
                        .values(deferred_until=D(2030, 1, 1), rejected_due_on=D(2021, 1, 1)))
    again = [referral("R-1", "2016-01-01", locator="box 1, moved"),
             referral("N-1", "2016-01-01"),
             referral("R-4", "2015-01-01", system="paper", locator="box 4"),
             referral("N-2", "2016-01-01"),
             cp_case("R-5", None)]
    result = load_records(base, tmp_path, again, suffix=suffix)
    # R-4's row is the one already applied: not written again.
    assert (result.rows, result.created, result.updated, result.unchanged) == (5, 2, 2, 1)
    # moved; N-1 and N-2 are new with a due date; R-4 kept its date.
    assert result.due_dates_changed == 4
    recs = records_by_key(base)
    assert len(recs) == 8
    for key in ("R-1", "R-4", "R-5"):
        assert recs[key].id == before[key].id and recs[key].created_at == before[key].created_at
    for key in ("R-1", "R-5"):
        assert recs[key].last_import_id == recs["N-1"].last_import_id
    assert (recs["R-4"].last_import_id, recs["R-4"].updated_at) == (
        before["R-4"].last_import_id, before["R-4"].updated_at)
    assert (recs["R-1"].system, recs["R-1"].locator, recs["R-1"].due_on) == (
        None, "box 1, moved", D(2022, 1, 1))
    assert (recs["R-1"].deferred_until, recs["R-1"].rejected_due_on) == (
        D(2030, 1, 1), D(2021, 1, 1))
    assert (recs["R-5"].category, recs["R-5"].due_on, recs["R-5"].due_rule) == (
        "child_protection.case", None, None)
    assert "closed_on" in (recs["R-5"].needs_attention or "")
    assert recs["R-4"].due_on == D(2021, 1, 1) and recs["R-4"].locator == "box 4"
    assert recs["R-0"].last_import_id == before["R-0"].last_import_id
    now = base.clock.now()
    assert (recs["N-1"].created_at, recs["N-1"].updated_at, recs["R-1"].updated_at) == (
        now, now, now)
    with base.sessions() as session:
        events = list(session.scalars(select(AuditEvent).where(
            AuditEvent.kind == "RecordsImported").order_by(AuditEvent.id)))
    assert [(e.data["created"], e.data["updated"], e.data["unchanged"]) for e in events] == [
        (6, 0, 0), (2, 2, 1)]


CATEGORIES = ("education.pupil_record", "safeguarding.referral", "child_protection.case",
              "looked_after.case_record")


def _day(rng: random.Random, lo: int = 1950, hi: int = 2026) -> str:
    return (dt.date(lo, 1, 1) + dt.timedelta(days=rng.randrange((hi - lo) * 365))).isoformat()


def test_written_decisions_are_the_engines(base, tmp_path, monkeypatch):
    """Every decision written with a row is what the policy engine decides from the facts as
    stored afterwards (the subject's merged dates, a terminated agreement's notice), for a
    varied file over several batches, including rows missing the facts their rule needs."""
    monkeypatch.setattr(records_mod, "BATCH", 40)
    add_agreement(base, code="ISA-ENDED", title="Ended ISA", notice="3m", action="return")
    terminate_agreement(base, "ISA-ENDED", on=D(2024, 3, 31))
    rng = random.Random(2026)
    rows = []
    for n in range(400):
        category = rng.choice(CATEGORIES)
        subject = f"S-{rng.randrange(120)}" if rng.random() < 0.8 else ""
        row = {"record_id": f"R-{n}", "category": category, "controller": "LA-01",
               "subject_ref": subject, "opened_on": _day(rng) if rng.random() < 0.9 else "",
               "closed_on": "", "event_on": _day(rng) if rng.random() < 0.2 else "",
               "flags": rng.choice(["", "sen", "adopted;sen", "looked_after"]),
               "agreement": rng.choice(["", "", "ISA-01", "ISA-ENDED"])}
        if row["opened_on"] and rng.random() < 0.7:
            row["closed_on"] = row["opened_on"]
        rows.append(row)
    # Subject dates: stated once per subject, on a random one of its rows, so that some rows
    # come before the row that dates their subject (possibly in another batch).
    subjects = sorted({r["subject_ref"] for r in rows if r["subject_ref"]})
    for ref in subjects:
        mine = [r for r in rows if r["subject_ref"] == ref]
        born = _day(rng, 1950, 2015)
        rng.choice(mine)["date_of_birth"] = born
        if rng.random() < 0.15:
            died = (dt.date.fromisoformat(born) + dt.timedelta(days=rng.randrange(1, 9000)))
            rng.choice(mine)["date_of_death"] = died.isoformat()
    load_records(base, tmp_path, rows)
    with base.sessions() as session:
        stored = session.execute(fact_query().add_columns(
            Record.due_on, Record.due_action, Record.due_rule, Record.approvals_required,
            Record.auto_approve, Record.needs_attention, Record.policy_version,
            Record.rules_digest)).all()
    assert len(stored) == 400
    kinds = set()
    for row in stored:
        expected = stored_decision(decide(base.policy, facts_from_row(row)))
        category = row[1]
        assert tuple(row[10:16]) == expected, (row[0], category)
        assert tuple(row[16:]) == (base.policy.version, base.policy.category_digest(category))
        kinds.add((expected[0] is None, expected[2]))
    # The file exercised dated and undated decisions and the termination rule.
    assert (True, None) in kinds and any(rule and "termination" in rule for _, rule in kinds)


def test_unreadable_csv_is_refused_whole(base, tmp_path, monkeypatch):
    """A CSV the reader cannot parse part-way (a field beyond the csv module's limit) is
    refused, naming where reading stopped, after earlier batches were written; nothing of it
    is applied, and the reader thread is gone."""
    monkeypatch.setattr(records_mod, "BATCH", 50)
    before = snapshot(base)
    threads = threading.active_count()
    rows = [referral(f"R-{n}", "2019-01-01") for n in range(120)]
    rows.append(referral("R-HUGE", "2019-01-01", locator="x" * (csv.field_size_limit() + 1)))
    path = write_records(tmp_path / "huge.csv", rows)
    with pytest.raises(ImportRefused) as err:
        import_records(base, path)
    assert err.value.problems[0].startswith(f"{path}: file: cannot be read as CSV after row 120 ")
    assert snapshot(base) == before
    assert threading.active_count() == threads


def test_a_failing_write_stops_the_reader(base, tmp_path, monkeypatch):
    """When the database refuses a batch (here a record whose controller was deleted after
    the import's lookups), the error reaches the caller, nothing is applied, and the reader
    thread, which may be waiting to hand over the next batch, stops."""
    monkeypatch.setattr(records_mod, "BATCH", 20)
    load_records(base, tmp_path, [referral("R-OLD", "2010-01-01")])
    before = snapshot(base)
    threads = threading.active_count()
    real = records_mod._Validator.__init__

    def vanishing_controller(self, session, categories, locators=None):
        real(self, session, categories, locators)
        self.controllers["GHOST-01"] = 10_000_000  # no such row: the foreign key refuses it

    monkeypatch.setattr(records_mod._Validator, "__init__", vanishing_controller)
    rows = [referral(f"R-{n}", "2019-01-01") for n in range(100)]
    rows[45] = referral("R-45", "2019-01-01", controller="GHOST-01")
    path = write_records(tmp_path / "ghost.csv", rows)
    with pytest.raises(IntegrityError):
        import_records(base, path)
    assert snapshot(base) == before
    assert threading.active_count() == threads


def test_csv_short_rows_and_blank_lines(base, tmp_path):
    """As with csv.DictReader: blank lines are skipped, and a row with fewer fields than the
    header leaves the missing trailing columns empty (so a missing required one is reported
    at its line)."""
    path = tmp_path / "short.csv"
    path.write_text("record_id,category,controller,opened_on,system\n"
                    "R-1,safeguarding.referral,LA-01,2019-01-01\n"
                    "\n"
                    "R-2,safeguarding.referral,LA-01,2019-01-02,paper\n")
    assert import_records(base, path).created == 2
    recs = records_by_key(base)
    assert (recs["R-1"].system, recs["R-2"].system) == (None, "paper")
    assert recs["R-2"].opened_on == D(2019, 1, 2)
    path = tmp_path / "shorter.csv"
    path.write_text("record_id,category,controller\n\nR-3,safeguarding.referral\n")
    with pytest.raises(ImportRefused) as err:
        import_records(base, path)
    assert err.value.problems == [f"{path}:3: controller: is required"]
