"""``records import`` against real SQLite and PostgreSQL: every column, re-import, and the
all-or-nothing refusal of a file with any bad row (DESIGN.md section 6)."""

from __future__ import annotations

import pytest
from int_support import (
    D,
    audit_counts,
    cp_case,
    load_records,
    pupil,
    records_by_key,
    referral,
    seed_controllers,
    snapshot,
    write_records,
)
from sqlalchemy import select

from retentiond.ingest import ImportRefused
from retentiond.ingest import records as records_mod
from retentiond.ingest.records import import_records
from retentiond.lifecycle.agreements import add_agreement
from retentiond.registry.models import Agreement, ImportRun, Record, Subject

FORMATS = [pytest.param(".csv", id="csv"), pytest.param(".jsonl", id="jsonl")]


@pytest.fixture
def base(ctx, tmp_path):
    """A registry with the synthetic controllers and one agreement."""
    seed_controllers(ctx, tmp_path)
    add_agreement(ctx, code="ISA-01", title="Synthetic ISA", notice="1m", action="return")
    return ctx


def _subjects(ctx):
    with ctx.sessions() as session:
        return {s.ref: (s.date_of_birth, s.date_of_death) for s in session.scalars(select(Subject))}


def _subject_of(ctx, key):
    with ctx.sessions() as session:
        return session.scalar(select(Subject.ref).join(Record, Record.subject_id == Subject.id)
                              .where(Record.record_key == key))


FULL = {
    "record_id": "R-FULL-1", "category": "looked_after.case_record", "controller": "SCH-01",
    "system": "case-files", "locator": "cf/box/0001", "subject_ref": "S-FULL-1",
    "date_of_birth": "2001-03-04", "date_of_death": "2010-05-06", "opened_on": "2002-01-01",
    "closed_on": "2010-06-01", "event_on": "2003-07-08", "flags": "sen;adopted",
    "agreement": "ISA-01",
}


@pytest.mark.parametrize("suffix", FORMATS)
def test_every_optional_column_is_stored(base, tmp_path, suffix):
    """Every documented column is stored, flags sorted, and the due date computed."""
    result = load_records(base, tmp_path, [FULL], suffix=suffix)
    assert (result.rows, result.created, result.updated) == (1, 1, 0)
    rec = records_by_key(base)["R-FULL-1"]
    with base.sessions() as session:
        agreement = session.get_one(Agreement, rec.agreement_id)
    assert (rec.category, rec.system, rec.locator) == (
        "looked_after.case_record", "case-files", "cf/box/0001")
    assert (rec.opened_on, rec.closed_on, rec.event_on) == (
        D(2002, 1, 1), D(2010, 6, 1), D(2003, 7, 8))
    assert rec.flags == "adopted;sen"
    assert agreement.code == "ISA-01"
    assert _subjects(base) == {"S-FULL-1": (D(2001, 3, 4), D(2010, 5, 6))}
    # Died at 9, so 15 years from death.
    assert (rec.due_on, rec.due_rule, rec.due_action) == (
        D(2025, 5, 6), "isa.looked_after.case_record", "delete")
    assert rec.approvals_required == 2
    assert rec.policy_version == base.policy.version


def test_jsonl_flags_may_be_a_list(base, tmp_path):
    """In JSON lines, flags may be given as a list."""
    load_records(base, tmp_path, [{**FULL, "flags": ["sen", "adopted"]}], suffix=".jsonl")
    assert records_by_key(base)["R-FULL-1"].flags == "adopted;sen"


@pytest.mark.parametrize("suffix", FORMATS)
def test_reimport_updates_never_duplicates(base, tmp_path, suffix):
    """Importing the same rows again updates the changed one in place and leaves the unchanged
    one unwritten; no record is duplicated."""
    rows = [pupil("R-1", "2000-01-01"), referral("R-2", "2019-01-01")]
    load_records(base, tmp_path, rows, suffix=suffix)
    ids = {k: r.id for k, r in records_by_key(base).items()}
    again = load_records(base, tmp_path, [pupil("R-1", "2000-01-01", system="mis"),
                                          referral("R-2", "2019-01-01")], suffix=suffix)
    assert (again.rows, again.created, again.updated, again.unchanged) == (2, 0, 1, 1)
    recs = records_by_key(base)
    assert {k: r.id for k, r in recs.items()} == ids
    assert recs["R-1"].system == "mis"
    with base.sessions() as session:
        assert session.scalar(select(ImportRun.id).order_by(ImportRun.id.desc())) == \
            recs["R-1"].last_import_id


def test_reimport_replaces_facts_and_recomputes(base, tmp_path):
    """A re-imported row replaces the record's facts (an empty column clears) and its due date."""
    load_records(base, tmp_path, [cp_case("R-CP", "2000-01-01", system="paper")])
    assert records_by_key(base)["R-CP"].due_on == D(2040, 1, 1)
    result = load_records(base, tmp_path, [cp_case("R-CP", None)])
    rec = records_by_key(base)["R-CP"]
    assert (rec.closed_on, rec.system, rec.due_on) == (None, None, None)
    assert "closed_on" in (rec.needs_attention or "")
    assert result.due_dates_changed == 1


def test_empty_subject_date_keeps_known_one(base, tmp_path):
    """A subject's date of birth, once known, is kept when a later row leaves it empty."""
    load_records(base, tmp_path, [pupil("R-1", "2000-01-01", subject="S-1")])
    load_records(base, tmp_path, [pupil("R-2", "", subject="S-1")])
    assert _subjects(base) == {"S-1": (D(2000, 1, 1), None)}
    assert records_by_key(base)["R-2"].due_on == D(2025, 1, 1)


def test_changed_subject_date_recomputes_its_other_records(base, tmp_path):
    """A corrected date of birth recomputes every record of that subject, not only the row's."""
    load_records(base, tmp_path, [pupil("R-1", "2000-01-01", subject="S-1"),
                                  pupil("R-2", "2000-01-01", subject="S-1")])
    load_records(base, tmp_path, [pupil("R-1", "2001-06-30", subject="S-1")])
    recs = records_by_key(base)
    assert recs["R-1"].due_on == recs["R-2"].due_on == D(2026, 6, 30)


def test_subject_dates_on_separate_rows_are_merged(base, tmp_path):
    """One row may give the subject's birth and another its death: both are kept."""
    load_records(base, tmp_path, [
        {"record_id": "R-LAC-1", "category": "looked_after.case_record", "controller": "LA-01",
         "subject_ref": "S-9", "date_of_birth": "2004-02-29"},
        {"record_id": "R-LAC-2", "category": "looked_after.case_record", "controller": "LA-01",
         "subject_ref": "S-9", "date_of_death": "2012-01-10"},
    ])
    assert _subjects(base) == {"S-9": (D(2004, 2, 29), D(2012, 1, 10))}
    recs = records_by_key(base)
    assert recs["R-LAC-1"].due_on == recs["R-LAC-2"].due_on == D(2027, 1, 10)


def test_spreadsheet_export_with_bom_and_crlf(base, tmp_path):
    """A CSV saved by a spreadsheet (UTF-8 byte-order mark, CRLF line ends) imports cleanly."""
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffrecord_id,category,controller,opened_on\r\n"
                     "R-1,safeguarding.referral,LA-01,2019-01-01\r\n".encode())
    assert import_records(base, path).created == 1
    assert records_by_key(base)["R-1"].due_on == D(2025, 1, 1)


def test_agreement_column_links_records(base, tmp_path):
    """The agreement column links a record to a known agreement; empty leaves it unlinked."""
    load_records(base, tmp_path, [pupil("R-1", "2000-01-01", agreement="ISA-01"),
                                  pupil("R-2", "2000-01-01", agreement="")])
    recs = records_by_key(base)
    assert recs["R-1"].agreement_id is not None and recs["R-2"].agreement_id is None


def test_import_writes_one_audit_event(base, tmp_path):
    """A successful import writes one RecordsImported event with its counts."""
    load_records(base, tmp_path, [pupil("R-1", "2000-01-01"), referral("R-2", "2019-01-01")])
    assert audit_counts(base)["RecordsImported"] == 1


# --- refusals ---------------------------------------------------------------------------------

GOOD = [pupil("R-G1", "2000-01-01"), referral("R-G2", "2019-01-01")]

#: (bad row, line of the expected problem, field). The good rows are lines 2 and 3.
BAD_ROWS = [
    pytest.param({**referral("R-B", "2019-01-01"), "category": "education.unknown"}, "category",
                 id="unknown-category"),
    pytest.param(referral("R-B", "2019-01-01", controller="SCH-99"), "controller",
                 id="unknown-controller"),
    pytest.param(referral("R-B", "22/11/2019"), "opened_on", id="bad-date"),
    pytest.param(referral("R-B", "2019-1-5"), "opened_on", id="unpadded-date"),
    pytest.param(pupil("R-B", "2023-02-29"), "date_of_birth", id="impossible-date"),
    pytest.param(pupil("R-B", "2023-04-31"), "date_of_birth", id="impossible-day"),
    pytest.param({**referral("R-B", "2019-01-01"), "category": ""}, "category",
                 id="empty-required"),
    pytest.param(cp_case("R-B", "2001-01-01", opened_on="2002-01-01"), "closed_on",
                 id="closed-before-opened"),
    pytest.param({**referral("R-B", "2019-01-01"), "date_of_birth": "2000-01-01"},
                 "date_of_birth", id="dob-without-subject"),
    pytest.param({**referral("R-B", "2019-01-01"), "date_of_death": "2000-01-01"},
                 "date_of_death", id="dod-without-subject"),
    pytest.param(pupil("R-B", "2005-01-01", date_of_death="2004-01-01"), "date_of_death",
                 id="death-before-birth"),
    pytest.param(referral("R-B", "2019-01-01", agreement="ISA-99"), "agreement",
                 id="unknown-agreement"),
    pytest.param(referral("R-B", "2019-01-01", flags="Bad Flag"), "flags", id="bad-flag"),
    pytest.param(referral("R-G1", "2019-01-01"), "record_id", id="duplicate-record-id"),
    pytest.param(pupil("R-B", "2001-01-01", subject="S-R-G1"), "date_of_birth",
                 id="conflicting-subject-dates"),
    pytest.param(pupil("R-B", "", subject="S-R-G1", date_of_death="1999-12-31"),
                 "date_of_death", id="death-before-birth-across-rows"),
]


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize(("bad", "field"), BAD_ROWS)
def test_file_with_bad_row_is_refused_whole(base, tmp_path, suffix, bad, field):
    """A bad row refuses the whole file, naming file:line and field; even the good rows
    before it are not applied."""
    load_records(base, tmp_path, [referral("R-OLD", "2010-01-01")])
    before = snapshot(base)
    path = write_records(tmp_path / f"bad{suffix}", [*GOOD, bad, referral("R-G3", "2018-01-01")],
                         columns=None)
    line = 4 if suffix == ".csv" else 3
    with pytest.raises(ImportRefused) as err:
        import_records(base, path, fmt=suffix.lstrip("."))
    assert err.value.problems, err.value
    assert err.value.problems[0].startswith(f"{path}:{line}: {field}: "), err.value.problems
    assert len(err.value.problems) == 1, err.value.problems
    assert snapshot(base) == before


@pytest.mark.parametrize(("header", "field"), [
    pytest.param(("record_id", "controller", "opened_on"), "category", id="missing-category"),
    pytest.param(("category", "controller"), "record_id", id="missing-record-id"),
    pytest.param(("record_id", "category", "controller", "nickname"), "nickname",
                 id="unknown-column"),
])
def test_bad_header_is_refused(base, tmp_path, header, field):
    """A missing required column or an unknown column refuses the file at line 1."""
    path = tmp_path / "bad.csv"
    path.write_text(",".join(header) + "\n" + ",".join("x" for _ in header) + "\n")
    before = snapshot(base)
    with pytest.raises(ImportRefused) as err:
        import_records(base, path)
    assert err.value.problems[0].startswith(f"{path}:1: {field}: "), err.value.problems
    assert snapshot(base) == before


@pytest.mark.parametrize(("text", "field"), [
    pytest.param('{"record_id": "R-1", "category": "safeguarding.referral"}\n', "controller",
                 id="missing-key"),
    pytest.param('{"record_id": "R-1", "category": "safeguarding.referral", '
                 '"controller": "LA-01", "colour": "red"}\n', "colour", id="unknown-key"),
    pytest.param("[1, 2]\n", "(row)", id="not-an-object"),
    pytest.param("{not json\n", "(row)", id="not-json"),
    pytest.param('{"record_id": "R-1", "category": "safeguarding.referral", '
                 '"controller": "LA-01", "opened_on": 20190101}\n', "opened_on", id="number-date"),
])
def test_bad_json_line_is_refused(base, tmp_path, text, field):
    """A bad JSON line refuses the file, naming its line and field."""
    path = tmp_path / "bad.jsonl"
    path.write_text('{"record_id": "R-0", "category": "safeguarding.referral", '
                    '"controller": "LA-01", "opened_on": "2019-01-01"}\n' + text)
    before = snapshot(base)
    with pytest.raises(ImportRefused) as err:
        import_records(base, path, fmt="jsonl")
    assert err.value.problems[0].startswith(f"{path}:2: {field}: "), err.value.problems
    assert snapshot(base) == before


def test_every_problem_is_listed(base, tmp_path):
    """Problems beyond the first are listed too, each naming its line and field."""
    path = write_records(tmp_path / "bad.csv", [
        referral("R-1", "2019-01-01"),
        referral("R-2", "2019-13-01"),
        referral("R-3", "2019-01-01", controller="NOPE"),
        referral("R-4", "2019-01-01"),
        pupil("R-5", "2023-02-29"),
    ])
    with pytest.raises(ImportRefused) as err:
        import_records(base, path)
    assert [p.split(": ")[0:2] for p in err.value.problems] == [
        [f"{path}:3", "opened_on"], [f"{path}:4", "controller"], [f"{path}:6", "date_of_birth"],
    ]
    assert records_by_key(base) == {}


def test_duplicates_after_another_problem_are_listed(base, tmp_path):
    """A duplicate record_id is reported even when an earlier row already has a problem."""
    path = write_records(tmp_path / "bad.csv", [
        referral("R-1", "2019-02-30"),
        referral("R-2", "2019-01-01"),
        referral("R-2", "2019-01-01"),
    ])
    with pytest.raises(ImportRefused) as err:
        import_records(base, path)
    assert [p.split(": ")[0:2] for p in err.value.problems] == [
        [f"{path}:2", "opened_on"], [f"{path}:4", "record_id"],
    ]


def test_problems_beyond_the_limit_are_counted(base, tmp_path):
    """More problems than are listed are still counted in the refusal."""
    rows = [referral(f"R-{n}", "not-a-date") for n in range(records_mod.MAX_PROBLEMS + 7)]
    path = write_records(tmp_path / "bad.csv", rows)
    with pytest.raises(ImportRefused) as err:
        import_records(base, path)
    assert len(err.value.problems) == records_mod.MAX_PROBLEMS
    assert err.value.more == 7
    assert records_by_key(base) == {}


@pytest.mark.parametrize("kind", ["duplicate-record-id", "conflicting-dob", "conflicting-dod"])
def test_conflicts_across_batches_are_refused(base, tmp_path, monkeypatch, kind):
    """Duplicates and conflicting subject dates are caught even when the rows fall in
    different write batches of a large file."""
    monkeypatch.setattr(records_mod, "BATCH", 2)
    rows = [referral(f"R-{n}", "2019-01-01") for n in range(5)]
    if kind == "duplicate-record-id":
        rows += [referral("R-0", "2019-01-01")]
    elif kind == "conflicting-dob":
        rows = [pupil("R-P1", "2000-01-01", subject="S-1"), *rows,
                pupil("R-P2", "2000-01-02", subject="S-1")]
    else:
        rows = [pupil("R-P1", "2000-01-01", subject="S-1", date_of_death="2010-01-01"), *rows,
                pupil("R-P2", "2000-01-01", subject="S-1", date_of_death="2010-01-02")]
    path = write_records(tmp_path / "big.csv", rows)
    with pytest.raises(ImportRefused) as err:
        import_records(base, path)
    field = {"duplicate-record-id": "record_id", "conflicting-dob": "date_of_birth",
             "conflicting-dod": "date_of_death"}[kind]
    assert err.value.problems[0].startswith(f"{path}:{len(rows) + 1}: {field}: "), \
        err.value.problems
    assert records_by_key(base) == {} and _subjects(base) == {}


def test_keys_listed_again_are_named_line_by_line_in_line_order(base, tmp_path, monkeypatch):
    """A re-import whose batches mix unchanged, changed and new rows with keys listed again: a
    key written by an earlier batch is "also on an earlier line" on every later line, a key
    listed twice in one batch names its first line, whether that first listing is unchanged,
    changed or new; the problems come in line order and nothing is applied."""
    monkeypatch.setattr(records_mod, "BATCH", 4)
    load_records(base, tmp_path, [referral(f"R-{n}", "2019-01-01") for n in range(4)])
    state = snapshot(base)
    path = write_records(tmp_path / "again.csv", [
        referral("R-N", "2019-01-01"),      # 2: new, written by batch 1
        referral("R-0", "2019-01-01"),      # 3: unchanged
        referral("R-1", "2019-05-01"),      # 4: changed
        referral("R-2", "2019-01-01"),      # 5: unchanged
        referral("R-N", "2019-01-01"),      # 6: batch 2: written by batch 1
        referral("R-0", "2019-01-01"),      # 7: unchanged, listed on line 3 (final check)
        referral("R-M", "2019-01-01"),      # 8: new
        referral("R-M", "2019-01-01"),      # 9: same batch as line 8
        referral("R-N", "2019-01-01"),      # 10: batch 3: written by batch 1
        referral("R-3", "2019-01-01"),      # 11: unchanged
        referral("R-3", "2019-01-01"),      # 12: same batch as line 11
        referral("R-N", "2019-01-01"),      # 13: same batch, written by batch 1
    ])
    with pytest.raises(ImportRefused) as err:
        import_records(base, path)
    assert err.value.problems == [
        f"{path}:6: record_id: 'R-N' is also on an earlier line",
        f"{path}:9: record_id: 'R-M' is also on line 8",
        f"{path}:10: record_id: 'R-N' is also on an earlier line",
        f"{path}:12: record_id: 'R-3' is also on line 11",
        f"{path}:13: record_id: 'R-N' is also on an earlier line",
        f"{path}:7: record_id: 'R-0' is also on line 3",
    ]
    assert snapshot(base)["records"] == state["records"]


def test_same_subject_same_dates_in_one_file_is_fine(base, tmp_path):
    """The same subject on several rows with the same (or empty) dates is not a conflict."""
    load_records(base, tmp_path, [pupil("R-1", "2000-01-01", subject="S-1"),
                                  pupil("R-2", "2000-01-01", subject="S-1"),
                                  pupil("R-3", "", subject="S-1")])
    assert _subjects(base) == {"S-1": (D(2000, 1, 1), None)}
    assert {_subject_of(base, k) for k in ("R-1", "R-2", "R-3")} == {"S-1"}


@pytest.mark.parametrize(("content", "problem"), [
    pytest.param(b"record_id,category,controller\n", "has no rows", id="empty"),
    pytest.param(b"record_id,category,controller\nR-1,safeguarding.referral,LA-01\xff\n",
                 "UTF-8", id="not-utf8"),
])
def test_unusable_file_is_refused(base, tmp_path, content, problem):
    """An empty file, or one that is not UTF-8, is refused rather than half-read."""
    path = tmp_path / "odd.csv"
    path.write_bytes(content)
    with pytest.raises(ImportRefused) as err:
        import_records(base, path)
    assert problem in err.value.problems[0]
    assert records_by_key(base) == {}


def test_missing_file_is_refused(base, tmp_path):
    """A file that cannot be read is refused with its name."""
    with pytest.raises(ImportRefused) as err:
        import_records(base, tmp_path / "nope.csv")
    assert str(tmp_path / "nope.csv") in err.value.problems[0]
