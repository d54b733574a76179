"""``holds import``: many holds from one file, all or none, on real SQLite and PostgreSQL.

A first day's list of holds is placed in one transaction with the same effect as placing each
one by one (the same cases held, the same events); one wrong row refuses the whole file with
every problem named by line and field, and the registry is left exactly as it was."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import TODAY
from int_support import (
    audit_counts,
    load_records,
    pupil,
    referral,
    seed_controllers,
    snapshot,
    states,
)

from retentiond.ingest import ImportRefused
from retentiond.ingest.holds import import_holds
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.filters import save_filter
from retentiond.lifecycle.holds import list_holds, place_hold

ALL = {"R-S1-A", "R-S1-B", "R-S2", "R-REF-1", "R-REF-2"}
HEADER = "scope,type,reason,until\n"


@pytest.fixture
def estate(ctx, tmp_path):
    """Five due records, queued: two of subject S-1 at SCH-01, one of S-2 at SCH-02, two
    referrals at LA-01."""
    seed_controllers(ctx, tmp_path)
    load_records(ctx, tmp_path, [
        pupil("R-S1-A", "2000-01-01", subject="S-1"),
        pupil("R-S1-B", "2000-01-01", subject="S-1"),
        pupil("R-S2", "2000-05-05", subject="S-2", controller="SCH-02"),
        referral("R-REF-1", "2015-01-01"),
        referral("R-REF-2", "2016-01-01"),
    ])
    evaluate(ctx, TODAY)
    return ctx


def _file(tmp_path, name, body, header=HEADER):
    path = tmp_path / name
    path.write_text(header + body, encoding="utf-8")
    return path


def test_import_places_every_hold_as_one_by_one_would(estate, tmp_path):
    """Three holds from a file: the covered cases are held, each hold has its HoldPlaced
    event and the file one HoldsPlaced; the holds are those ``holds place`` would make."""
    path = _file(tmp_path, "holds.csv",
                 "record:R-S2,legal,synthetic claim,\n"
                 "subject:S-1,subject_access,SAR 2026/001,9999-12-31\n"
                 "controller:LA-01,inquiry,synthetic inquiry,\n")
    result = import_holds(estate, path)
    assert result.rows == 3 and len(result.hold_ids) == 3
    assert result.as_json()["placed"] == 3
    assert {k: s[-1] for k, s in states(estate).items()} == {k: "held" for k in ALL}
    counts = audit_counts(estate)
    assert (counts["HoldPlaced"], counts["HoldsPlaced"], counts["DisposalHeld"]) == (3, 1, 5)
    holds = {h.scope: h for h in list_holds(estate)}
    assert set(holds) == {"record:R-S2", "subject:S-1", "controller:LA-01"}
    assert holds["subject:S-1"].until == dt.date(9999, 12, 31)
    assert holds["subject:S-1"].type == "subject_access"
    assert [holds[s].id for s in ("record:R-S2", "subject:S-1", "controller:LA-01")] == \
        result.hold_ids
    assert {h.placed_by for h in holds.values()} == {estate.actor}


def test_import_holds_exactly_the_cases_covered(ctx, tmp_path):
    """Holds that overlap (a subject and one of its records) hold each covered case once,
    with one DisposalHeld each; cases no hold covers stay pending review."""
    seed_controllers(ctx, tmp_path)
    rows = [pupil(f"R-{i}", "2000-01-01", subject=f"S-{i % 3}") for i in range(9)]
    load_records(ctx, tmp_path, rows)
    evaluate(ctx, TODAY)
    before = audit_counts(ctx)
    specs = [("subject:S-1", "legal", "claim one"), ("record:R-2", "police", "request"),
             ("record:R-4", "complaint", "complaint")]  # R-4 is also S-1's
    import_holds(ctx, _file(tmp_path, "h.csv", "".join(f"{s},{t},{r},\n" for s, t, r in specs)))
    imported = ({k: s[-1] for k, s in states(ctx).items()}, audit_counts(ctx) - before)
    assert imported[1].pop("HoldsPlaced") == 1
    assert imported[0]["R-1"] == "held" and imported[0]["R-0"] == "pending_review"
    held_one_by_one = {f"R-{i}" for i in range(9) if i % 3 == 1} | {"R-2", "R-4"}
    assert {k for k, s in imported[0].items() if s == "held"} == held_one_by_one
    assert imported[1] == {"HoldPlaced": 3, "DisposalHeld": len(held_one_by_one)}


BAD_ROWS = [
    pytest.param("record:R-NOPE,legal,claim,", 3, "scope", "no record 'R-NOPE'", id="unknown-record"),
    pytest.param("subject:S-NOPE,legal,claim,", 3, "scope", "no subject", id="unknown-subject"),
    pytest.param("category:nothing.here,legal,claim,", 3, "scope", "no category",
                 id="unknown-category"),
    pytest.param("box:12,legal,claim,", 3, "scope", "is not one of", id="unknown-kind"),
    pytest.param("record:R-S2,whim,claim,", 3, "type", "hold type 'whim'", id="unknown-type"),
    pytest.param("record:R-S2,legal,   ,", 3, "reason", "a hold needs a reason", id="blank-reason"),
    pytest.param("record:R-S2,legal,\u200b,", 3, "reason", "a hold needs a reason",
                 id="invisible-reason"),
    pytest.param("record:R-S\u200b2,legal,claim,", 3, "scope", "U+200B", id="zero-width-scope"),
    pytest.param("record:R-S2,legal,claim,2026-11-21", 3, "until", "in the past",
                 id="until-in-past"),
    pytest.param("record:R-S2,legal,claim,2026-02-30", 3, "until", "not a real date",
                 id="until-not-a-date"),
    pytest.param("filter:no-such,legal,claim,", 3, "scope", "no saved filter", id="unknown-filter"),
]


@pytest.mark.parametrize(("row", "line", "field", "message"), BAD_ROWS)
def test_one_bad_row_refuses_the_file_and_changes_nothing(estate, tmp_path, row, line, field,
                                                          message):
    """A good row, then a bad one, then a good one: the file is refused naming the bad row's
    line and field, and nothing at all is written (not even the good rows' holds)."""
    before = snapshot(estate)
    path = _file(tmp_path, "holds.csv",
                 f"subject:S-1,legal,good row,\n{row}\ncontroller:LA-01,legal,good too,\n")
    with pytest.raises(ImportRefused) as caught:
        import_holds(estate, path)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{path}:{line}: {field}: "), problem
    assert message in problem, problem
    assert snapshot(estate) == before


def test_every_problem_is_listed(estate, tmp_path):
    """Problems of both kinds (a row's own fields, and scopes checked against the registry)
    are each named in one refusal, in the file's order."""
    path = _file(tmp_path, "holds.csv",
                 "record:R-NOPE,legal,claim,\nrecord:R-S2,legal,claim,2026-02-30\n"
                 "record:R-S2,whim,claim,\nrecord:R-GONE,legal,c,\n")
    before = snapshot(estate)
    with pytest.raises(ImportRefused) as caught:
        import_holds(estate, path)
    assert [(p.split(":")[1], p.split(": ")[1]) for p in caught.value.problems] == [
        ("2", "scope"), ("3", "until"), ("4", "type"), ("5", "scope")]
    path = _file(tmp_path, "holds2.csv",
                 "record:R-NOPE,legal,claim,\nrecord:R-S2,legal,claim,\nrecord:R-GONE,legal,c,\n")
    with pytest.raises(ImportRefused) as caught:
        import_holds(estate, path)
    assert [(p.split(":")[1], p.split(": ")[1]) for p in caught.value.problems] == [
        ("2", "scope"), ("4", "scope")]
    assert snapshot(estate) == before


def test_a_missing_or_unknown_column_is_refused(estate, tmp_path):
    before = snapshot(estate)
    with pytest.raises(ImportRefused, match="required column 'reason' is missing"):
        import_holds(estate, _file(tmp_path, "a.csv", "record:R-S2,legal\n", header="scope,type\n"))
    with pytest.raises(ImportRefused, match="unknown column 'placed_by'"):
        import_holds(estate, _file(tmp_path, "b.csv", "record:R-S2,legal,c,x\n",
                                   header="scope,type,reason,placed_by\n"))
    assert snapshot(estate) == before


def test_a_filter_hold_from_a_file_keeps_the_filters_criteria(estate, tmp_path):
    saved = save_filter(estate, name="LA referrals",
                        criteria={"controller": "LA-01", "state": "pending_review"})
    import_holds(estate, _file(tmp_path, "f.csv", f"filter:{saved.id},legal,claim,\n"))
    (hold,) = list_holds(estate)
    assert hold.scope == "filter:LA referrals"
    assert hold.criteria == {"controller": "LA-01"}
    assert {k for k, s in states(estate).items() if s[-1] == "held"} == {"R-REF-1", "R-REF-2"}


def test_jsonl_and_an_empty_file(estate, tmp_path):
    path = tmp_path / "holds.jsonl"
    path.write_text('{"scope": "record:R-S2", "type": "police", "reason": "request"}\n')
    assert len(import_holds(estate, path, fmt="jsonl").hold_ids) == 1
    empty = import_holds(estate, _file(tmp_path, "empty.csv", ""))
    assert (empty.rows, empty.hold_ids) == (0, [])
    assert empty.as_json() == {"rows": 0, "placed": 0, "first_id": None, "last_id": None}


def test_place_hold_messages_are_unchanged(estate):
    """``holds place`` (one hold) still says what it said before the two shared a checker."""
    from retentiond.lifecycle.context import LifecycleError

    with pytest.raises(LifecycleError, match=r"^--until 2026-11-21 is in the past$"):
        place_hold(estate, scope="record:R-S2", hold_type="legal", reason="c",
                   until=dt.date(2026, 11, 21))
    with pytest.raises(LifecycleError, match=r"^no record 'R-NOPE' is known to the registry"):
        place_hold(estate, scope="record:R-NOPE", hold_type="legal", reason="c")


def test_a_file_of_many_bad_rows_names_the_first_fifty_and_counts_the_rest(estate, tmp_path):
    path = _file(tmp_path, "many.csv", "".join(f"record:R-NOPE-{i},legal,claim,\n"
                                               for i in range(60)))
    with pytest.raises(ImportRefused) as caught:
        import_holds(estate, path)
    assert len(caught.value.problems) == 50 and caught.value.more == 10
    assert caught.value.problems[0].startswith(f"{path}:2: scope: no record 'R-NOPE-0'")
    assert "60 problem(s)" in str(caught.value)
