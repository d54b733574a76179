"""Sources (``[sources.NAME]``) against real SQLite and PostgreSQL registries, real folders and
real holding databases on PostgreSQL and MariaDB: inbox files good, bad and half-written,
queries in full and changes mode, reconciliation that flags and never deletes, and the
all-or-nothing run."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from pathlib import Path

import pytest
from int_support import (
    D,
    audit_counts,
    pupil,
    records_by_key,
    referral,
    seed_controllers,
    snapshot,
    write_records,
)
from sqlalchemy import create_engine, select, text

from retentiond.config import ConfigError, load_config
from retentiond.registry.models import (
    AuditEvent,
    Disposal,
    ImportRun,
    Record,
    SourceRun,
)
from retentiond.sources import inbox as inbox_mod
from retentiond.sources import load_sources, next_run_at, run_source, source_statuses
from retentiond.sources.settings import source_spec


@pytest.fixture
def base(ctx, tmp_path):
    """A registry with the synthetic controllers."""
    seed_controllers(ctx, tmp_path)
    return ctx


def inbox_spec(folder: Path, **kw):
    """An inbox source on ``folder`` (made), every minute, settling 0.1 s."""
    folder.mkdir(exist_ok=True)
    table = {"kind": "inbox", "path": str(folder), "interval_s": 60, "settle_s": 0.1, **kw}
    return source_spec("mis", table, "test.toml: [sources.mis]", base=folder)


def no_wait(seconds: float) -> None:
    """The settle wait, not needed when files do not change."""


def run(ctx, spec, **kw):
    return run_source(ctx, spec, force=True, wait=kw.pop("wait", no_wait), **kw)


def events(ctx, kind):
    with ctx.sessions() as session:
        return list(session.scalars(select(AuditEvent).where(AuditEvent.kind == kind)
                                    .order_by(AuditEvent.id)))


def receipt(folder: Path, outcome: str, original: str) -> dict:
    found = [p for p in (folder / outcome).glob(f"*-{original}.receipt.json")]
    assert len(found) == 1, f"{outcome}/{original}: {found}"
    return json.loads(found[0].read_text())


# --- inbox ------------------------------------------------------------------------------------

def test_inbox_good_bad_and_half_written_files(base, tmp_path):
    """Good files are applied and moved to done/ with a receipt; a bad file is refused whole
    (nothing of it applied) and moved to refused/ with its line and field; a file still
    growing between the two looks is left where it is, unread."""
    folder = tmp_path / "inbox"
    spec = inbox_spec(folder)
    write_records(folder / "a.csv", [pupil("R-1", "2003-05-01"), referral("R-2", "2019-01-01")])
    write_records(folder / "b.jsonl", [referral("R-3", "2020-01-01")])
    write_records(folder / "bad.csv", [referral("R-4", "2020-01-01"),
                                       referral("R-5", "2020-02-30")])
    half = folder / "half.csv"
    half.write_text("record_id,category,controller,opened_on\nR-6,safeguarding.referral,LA-01,")

    def growing(seconds: float) -> None:
        with half.open("a") as fh:  # the exporter is still writing it
            fh.write("2020-01-01\n")

    outcome = run(base, spec, wait=growing)
    assert outcome.outcome == "refused"
    assert (outcome.counts["files_done"], outcome.counts["files_refused"]) == (2, 1)
    assert (outcome.counts["rows"], outcome.counts["created"]) == (3, 3)
    assert set(records_by_key(base)) == {"R-1", "R-2", "R-3"}
    assert half.exists() and not list((folder / "work").iterdir())
    assert receipt(folder, "done", "a.csv")["counts"]["created"] == 2
    refused = receipt(folder, "refused", "bad.csv")
    assert refused["problems"] == ["bad.csv:3: opened_on: '2020-02-30' is not a real date "
                                   "(day is out of range for month)"]
    assert refused["file"] == "bad.csv" and refused["outcome"] == "refused"
    assert sorted(p.name.split("-", 2)[2] for p in (folder / "refused").glob("*.csv")) == \
        ["bad.csv"]
    with base.sessions() as session:
        runs = list(session.scalars(select(SourceRun)))
    assert [(r.outcome, r.counts["files_done"]) for r in runs] == [("refused", 2)]
    assert runs[0].errors == refused["problems"]
    finished = events(base, "SourceRunFinished")
    assert [(e.entity_id, e.data["outcome"], e.data["files_refused"]) for e in finished] == [
        ("mis", "refused", 1)]
    # The half-written file, now whole, is read by the next run.
    assert run(base, spec).counts["files_done"] == 1
    assert "R-6" in records_by_key(base)


def test_inbox_ready_marker_is_read_without_waiting(base, tmp_path):
    """A file with a NAME.ready marker is read at once (no settle wait); the marker moves with
    it; a marker alone is not a file to read."""
    folder = tmp_path / "inbox"
    spec = inbox_spec(folder)
    write_records(folder / "x.csv", [referral("R-1", "2019-01-01")])
    (folder / "x.csv.ready").write_text("")
    (folder / "orphan.csv.ready").write_text("")
    waited = []
    outcome = run(base, spec, wait=waited.append)
    assert waited == [] and outcome.counts["files_done"] == 1
    assert [p.name.split("-", 2)[2] for p in sorted((folder / "done").iterdir())] == [
        "x.csv", "x.csv.ready", "x.csv.receipt.json"]


def test_inbox_ignores_symbolic_links(base, tmp_path):
    """A symbolic link in the inbox is not read or moved, whatever it points at."""
    folder = tmp_path / "inbox"
    spec = inbox_spec(folder)
    target = write_records(tmp_path / "elsewhere.csv", [referral("R-1", "2019-01-01")])
    (folder / "link.csv").symlink_to(target)
    (folder / "link.csv.ready").write_text("")
    outcome = run(base, spec)
    assert outcome.counts["files_done"] == 0 and records_by_key(base) == {}
    assert (folder / "link.csv").is_symlink() and target.exists()


def test_inbox_run_that_died_before_moving_finishes_without_applying_twice(base, tmp_path,
                                                                           monkeypatch):
    """A run that committed but died before moving its file leaves it in work/; the next run
    moves it to done/ with a receipt, and imports nothing twice."""
    folder = tmp_path / "inbox"
    spec = inbox_spec(folder)
    write_records(folder / "x.csv", [referral("R-1", "2019-01-01")])

    def die(*a, **kw):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(inbox_mod, "finish", die)
    assert run(base, spec).outcome == "ok"
    assert [p.name.split("-", 2)[2] for p in (folder / "work").iterdir()] == ["x.csv"]
    monkeypatch.undo()
    again = run(base, spec)
    assert again.outcome == "ok" and again.counts["files_done"] == 0
    got = receipt(folder, "done", "x.csv")
    assert got["recovered"] is True and got["counts"]["created"] == 1
    with base.sessions() as session:
        assert len(list(session.scalars(select(ImportRun)))) == 1
    assert not list((folder / "work").iterdir())


def test_inbox_claimed_file_left_unapplied_is_read_again(base, tmp_path):
    """A file claimed into work/ by a run that died before committing is read by the next."""
    folder = tmp_path / "inbox"
    spec = inbox_spec(folder)
    inbox_mod.prepare(folder)
    write_records(folder / "work" / "20261122T010000Z-abcdef-x.csv",
                  [referral("R-1", "2019-01-01")])
    outcome = run(base, spec)
    assert outcome.counts["files_done"] == 1 and "R-1" in records_by_key(base)
    assert receipt(folder, "done", "x.csv")["file"] == "x.csv"


# --- reconciliation -----------------------------------------------------------------------------

def test_full_extract_flags_gone_records_never_deletes_and_clears_on_return(base, tmp_path):
    """A full extract that no longer lists a record of its source flags it gone at source
    (audited), keeps it and its decision; listing it again clears the flag (audited)."""
    folder = tmp_path / "inbox"
    spec = inbox_spec(folder, mode="full")
    rows = [referral("R-1", "2019-01-01"), referral("R-2", "2018-01-01"),
            referral("R-3", "2017-01-01")]
    write_records(folder / "day1.csv", rows)
    run(base, spec)
    before = records_by_key(base)["R-2"]
    write_records(folder / "day2.csv", [rows[0], rows[2]])
    outcome = run(base, spec)
    assert (outcome.counts["gone"], outcome.counts["unchanged"]) == (1, 2)
    recs = records_by_key(base)
    assert set(recs) == {"R-1", "R-2", "R-3"}
    assert recs["R-2"].gone_at_source_at == base.clock.now()
    assert (recs["R-2"].due_on, recs["R-2"].source) == (before.due_on, "mis")
    assert recs["R-1"].gone_at_source_at is None
    gone = events(base, "RecordGoneAtSource")
    assert [(e.entity, e.entity_id, e.data["source"]) for e in gone] == [("record", "R-2", "mis")]
    # Still not listed: flagged once, not again.
    write_records(folder / "day3.csv", [rows[0], rows[2]])
    assert run(base, spec).counts["gone"] == 0
    write_records(folder / "day4.csv", rows)
    outcome = run(base, spec)
    assert (outcome.counts["back"], outcome.counts["unchanged"]) == (1, 3)
    assert records_by_key(base)["R-2"].gone_at_source_at is None
    assert [e.entity_id for e in events(base, "RecordBackAtSource")] == ["R-2"]


def test_changes_mode_never_flags(base, tmp_path):
    """A source in changes mode only adds and updates: what it does not list is left alone."""
    folder = tmp_path / "inbox"
    spec = inbox_spec(folder)
    write_records(folder / "1.csv", [referral("R-1", "2019-01-01"), referral("R-2", "2019-01-01")])
    run(base, spec)
    write_records(folder / "2.csv", [referral("R-1", "2019-01-01")])
    assert run(base, spec).counts["gone"] == 0
    assert all(r.gone_at_source_at is None for r in records_by_key(base).values())


def test_reconciliation_leaves_other_feeds_and_disposed_records_alone(base, tmp_path):
    """Only records fed by this source are flagged: not those of another source or of
    ``records import``, and not those this service has disposed of."""
    from int_support import load_records

    load_records(base, tmp_path, [referral("R-CLI", "2019-01-01")])
    folder = tmp_path / "inbox"
    spec = inbox_spec(folder, mode="full")
    write_records(folder / "1.csv", [referral("R-1", "2019-01-01"),
                                     referral("R-DONE", "2019-01-01")])
    run(base, spec)
    with base.sessions.begin() as session:
        rec = session.scalar(select(Record).where(Record.record_key == "R-DONE"))
        now = base.clock.now()
        session.add(Disposal(record_id=rec.id, state="executed", due_on=D(2025, 1, 1),
                             action="delete", rule_id="x", policy_version="x",
                             created_at=now, updated_at=now))
    write_records(folder / "2.csv", [referral("R-1", "2019-01-01")])
    assert run(base, spec).counts["gone"] == 0
    assert all(r.gone_at_source_at is None for r in records_by_key(base).values())


def test_unchanged_extract_writes_nothing(base, tmp_path):
    """Reading the same extract again writes no record: same update time, same import id."""
    folder = tmp_path / "inbox"
    spec = inbox_spec(folder, mode="full")
    rows = [pupil(f"R-{n}", "2003-05-01", subject=f"S-{n % 3}") for n in range(20)]
    write_records(folder / "1.csv", rows)
    run(base, spec)
    before = {k: (r.updated_at, r.last_import_id) for k, r in records_by_key(base).items()}
    write_records(folder / "2.csv", rows)
    later = dataclasses.replace(base, clock=type(base.clock)(base.clock.now()
                                                             + dt.timedelta(days=1)))
    outcome = run(later, spec)
    assert (outcome.counts["unchanged"], outcome.counts["updated"]) == (20, 0)
    assert {k: (r.updated_at, r.last_import_id)
            for k, r in records_by_key(base).items()} == before


def test_unchanged_row_that_disagrees_with_a_changed_one_refuses_the_file(base, tmp_path):
    """An unchanged row still states its subject's date of birth: a changed row of the same
    file that states another one for that subject refuses the file, nothing applied."""
    folder = tmp_path / "inbox"
    spec = inbox_spec(folder)
    write_records(folder / "1.csv", [pupil("R-1", "2003-05-01", subject="S-1"),
                                     pupil("R-2", "2003-05-01", subject="S-1")])
    run(base, spec)
    state = snapshot(base)
    write_records(folder / "2.csv", [pupil("R-1", "2003-05-01", subject="S-1"),
                                     pupil("R-2", "2004-05-01", subject="S-1")])
    outcome = run(base, spec)
    assert outcome.counts["files_refused"] == 1
    problems = receipt(folder, "refused", "2.csv")["problems"]
    assert problems == ["2.csv:2: date_of_birth: differs from line 3 for the same subject_ref"]
    after = snapshot(base)
    assert after["records"] == state["records"] and after["subjects"] == state["subjects"]


def test_duplicate_of_an_unchanged_row_refuses_the_file(base, tmp_path, monkeypatch):
    """A key listed twice is refused even when neither listing is written (both unchanged,
    in different batches)."""
    from retentiond.ingest import records as records_mod

    monkeypatch.setattr(records_mod, "BATCH", 2)
    folder = tmp_path / "inbox"
    spec = inbox_spec(folder)
    rows = [referral("R-1", "2019-01-01"), referral("R-2", "2019-01-01")]
    write_records(folder / "1.csv", rows)
    run(base, spec)
    write_records(folder / "2.csv", [rows[0], rows[1], rows[0]])
    run(base, spec)
    assert receipt(folder, "refused", "2.csv")["problems"] == [
        "2.csv:4: record_id: 'R-1' is also on line 2"]


# --- SQL sources ------------------------------------------------------------------------------

WAREHOUSE = """CREATE TABLE cases (case_ref VARCHAR(40) NOT NULL, kind VARCHAR(100),
    org VARCHAR(64), opened DATE, closed DATE, created TIMESTAMP NULL, n INTEGER)"""


def warehouse(url: str, rows: list[tuple]) -> None:
    """Replace the holding database's ``cases`` table with these rows."""
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE IF EXISTS cases"))
        conn.execute(text(WAREHOUSE))
        for row in rows:
            conn.execute(text("INSERT INTO cases (case_ref, kind, org, opened, closed, created, n)"
                              " VALUES (:a, :b, :c, :d, :e, :f, :g)"),
                         dict(zip("abcdefg", row, strict=True)))
    engine.dispose()


def sql_spec(url: str, query: str | None = None, **kw):
    table = {"kind": "sql", "url": url, "interval_s": 3600,
             "query": query or "SELECT case_ref, kind AS category, org, opened AS opened_on, "
                               "closed AS closed_on FROM cases ORDER BY case_ref",
             "columns": {"record_id": "case_ref", "controller": "org"}, **kw}
    return source_spec("warehouse", table, "test.toml: [sources.warehouse]", base=Path("."))


REF = "safeguarding.referral"
CP = "child_protection.case"


def test_sql_source_full_mode(base, holding_url):
    """A warehouse view read in full: columns mapped, dates taken as dates, a case that
    disappears is flagged gone at source (not deleted), a closure recomputes the due date."""
    warehouse(holding_url, [("C-1", REF, "LA-01", D(2019, 1, 1), None, None, 1),
                            ("C-2", CP, "LA-01", D(2000, 1, 1), None, None, 2),
                            ("C-3", REF, "LA-01", D(2018, 1, 1), None, None, 3)])
    spec = sql_spec(holding_url, mode="full")
    first = run(base, spec)
    assert first.outcome == "ok" and first.counts["created"] == 3
    recs = records_by_key(base)
    assert (recs["C-1"].due_on, recs["C-2"].due_on, recs["C-1"].source) == (
        D(2025, 1, 1), None, "warehouse")
    warehouse(holding_url, [("C-1", REF, "LA-01", D(2019, 1, 1), None, None, 1),
                            ("C-2", CP, "LA-01", D(2000, 1, 1), D(2001, 6, 1), None, 2)])
    second = run(base, spec)
    assert {k: second.counts[k] for k in ("updated", "unchanged", "gone")} == {
        "updated": 1, "unchanged": 1, "gone": 1}
    recs = records_by_key(base)
    assert recs["C-2"].due_on == D(2041, 6, 1)
    assert recs["C-3"].gone_at_source_at is not None and recs["C-3"].due_on == D(2024, 1, 1)
    with base.sessions() as session:
        run_row = session.scalar(select(SourceRun).order_by(SourceRun.id.desc()))
    assert run_row.outcome == "ok" and run_row.counts["gone"] == 1


def test_sql_source_changes_mode_and_whole_number_keys(base, holding_url):
    """A changes feed only upserts; whole numbers are taken as their digits."""
    warehouse(holding_url, [("C-1", REF, "LA-01", D(2019, 1, 1), None, None, 41)])
    spec = sql_spec(holding_url, "SELECT n AS record_id, kind AS category, org AS controller, "
                                 "opened AS opened_on FROM cases", columns={})
    assert run(base, spec).counts["created"] == 1
    warehouse(holding_url, [("C-2", REF, "LA-01", D(2019, 1, 1), None, None, 42)])
    assert run(base, spec).counts["gone"] == 0
    assert set(records_by_key(base)) == {"41", "42"}


def test_sql_source_bad_row_refuses_the_run_nothing_applied(base, holding_url):
    """A bad value (a timestamp where a date belongs) refuses the whole run, naming the row
    and the field; no record changes; the refusal is recorded and audited."""
    warehouse(holding_url, [("C-1", REF, "LA-01", D(2019, 1, 1), None, None, 1)])
    spec = sql_spec(holding_url, mode="full")
    run(base, spec)
    warehouse(holding_url, [("C-1", REF, "LA-01", D(2020, 1, 1), None, None, 1),
                            ("C-2", REF, "LA-01", D(2019, 1, 1), None,
                             dt.datetime(2019, 1, 1, 9, 30), 2)])
    state = snapshot(base)
    bad = sql_spec(holding_url, "SELECT case_ref, kind AS category, org, created AS opened_on "
                                "FROM cases ORDER BY case_ref", mode="full")
    outcome = run(base, bad)
    assert outcome.outcome == "refused"
    assert outcome.errors == ["[sources.warehouse]:2: opened_on: is a timestamp: cast it to a "
                              "date in the query"]
    after = snapshot(base)
    assert after["records"] == state["records"]
    with base.sessions() as session:
        last = session.scalar(select(SourceRun).order_by(SourceRun.id.desc()))
    assert (last.outcome, last.errors) == ("refused", outcome.errors)
    assert audit_counts(base)["SourceRunFinished"] == 2


def test_sql_source_unknown_column_and_empty_extract_are_refused(base, holding_url):
    """A column that is not a record column refuses the run naming it; a full extract with
    no rows is refused (it would flag every record of the source)."""
    warehouse(holding_url, [("C-1", REF, "LA-01", D(2019, 1, 1), None, None, 1)])
    odd = sql_spec(holding_url, "SELECT case_ref, kind AS category, org, n FROM cases")
    outcome = run(base, odd)
    assert outcome.outcome == "refused"
    assert outcome.errors[0].startswith("[sources.warehouse]:1: n: the query's column 'n' is "
                                        "not a record column")
    warehouse(holding_url, [])
    assert run(base, sql_spec(holding_url, mode="full")).errors == [
        "[sources.warehouse]: file: has no rows"]


def test_sql_source_that_cannot_be_reached_fails_and_is_recorded(base, tmp_path):
    """A warehouse that is not there fails the run (recorded, audited); nothing changes."""
    spec = sql_spec(f"sqlite:///{tmp_path / 'missing' / 'none.db'}")
    outcome = run(base, spec)
    assert outcome.outcome == "failed" and "OperationalError" in outcome.errors[0]
    with base.sessions() as session:
        assert session.scalar(select(SourceRun.outcome)) == "failed"


def test_sql_source_is_read_only(base, holding_url):
    """The query runs in a read-only transaction: a query that writes is refused by the
    database and the run fails."""
    warehouse(holding_url, [("C-1", REF, "LA-01", D(2019, 1, 1), None, None, 1)])
    engine = create_engine(holding_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE SEQUENCE ids"))
    engine.dispose()
    # A query that writes as it reads (a sequence moves on).
    spec = sql_spec(holding_url, "SELECT nextval(ids) AS record_id, kind AS category, org "
                                 "AS controller FROM cases" if "mysql" in holding_url else
                    "SELECT nextval('ids') AS record_id, kind AS category, org AS controller "
                    "FROM cases", columns={})
    outcome = run(base, spec)
    assert outcome.outcome == "failed"
    assert "read-only" in outcome.errors[0].lower().replace("read only", "read-only")
    engine = create_engine(holding_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM cases")).scalar() == 1
    engine.dispose()


# --- schedule and config ----------------------------------------------------------------------

def test_schedule_interval_and_cron(base, tmp_path):
    """A source is due at once the first time, then interval_s or the next cron time after
    its last start (Europe/London); not due means not run."""
    spec = inbox_spec(tmp_path / "inbox", interval_s=600)
    now = base.clock.now()
    assert next_run_at(spec, None, now) == now
    assert next_run_at(spec, now, now) == now + dt.timedelta(minutes=10)
    nightly = dataclasses.replace(spec, interval_s=None, cron="0 2 * * *")
    # 22 November 2026 is GMT: 02:00 London is 02:00 UTC the next day.
    assert next_run_at(nightly, now, now) == dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
    assert next_run_at(dataclasses.replace(spec, enabled=False), None, now) is None
    assert run_source(base, spec, wait=no_wait).outcome == "ok"
    assert run_source(base, spec, wait=no_wait).outcome == "skipped"
    with base.sessions() as session:
        [status] = source_statuses(session, [spec], now)
    assert status.next_run_at == now + dt.timedelta(minutes=10)
    assert status.as_json()["last_run"]["outcome"] == "ok"


def _toml(value):
    """A TOML value: strings and numbers as JSON writes them, tables inline."""
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


@pytest.mark.parametrize(("table", "message"), [
    ({"kind": "inbox", "path": "in", "interval_s": 60, "settle": 5},
     "[sources.mis].settle: unknown key for kind 'inbox'"),
    ({"kind": "ftp", "interval_s": 60}, "[sources.mis].kind: must be one of inbox, sql"),
    ({"kind": "inbox", "path": "in"}, "[sources.mis]: give a schedule"),
    ({"kind": "inbox", "path": "in", "interval_s": 60, "mode": "all"},
     "[sources.mis].mode: must be one of full, changes"),
    ({"kind": "sql", "url": "postgresql://u:secret@h/db", "query": "SELECT 1",
      "interval_s": 60}, "[sources.mis].url: a URL with a password belongs in url_file"),
    ({"kind": "sql", "url": "sqlite:///x.db", "query": "SELECT 1", "interval_s": 60,
      "columns": {"record": "id"}}, "[sources.mis].columns.record: not a record column"),
    ({"kind": "inbox", "path": "in", "cron": "0 2 * * 1"}, "day of week '1': use names"),
])
def test_bad_source_config_is_refused_naming_file_and_key(tmp_path, table, message):
    """Every mistake in a [sources.NAME] table is refused with the file and the key."""
    path = tmp_path / "retentiond.toml"
    path.write_text("[sources.mis]\n" + "".join(f"{k} = {_toml(v)}\n" for k, v in table.items()))
    with pytest.raises(ConfigError) as exc:
        load_sources(load_config(str(path), env={}))
    assert str(exc.value).startswith(f"{path}: ") and message in str(exc.value)
    assert "secret" not in str(exc.value)


def test_source_url_from_a_file_and_the_reserved_api_name(tmp_path):
    """A URL with a password comes from url_file; the name 'api' is kept for the push API."""
    (tmp_path / "wh.url").write_text("postgresql://u:secret@db.example/wh\n")
    cfg = tmp_path / "retentiond.toml"
    cfg.write_text('[sources.wh]\nkind = "sql"\nurl_file = "wh.url"\nquery = "SELECT 1"\n'
                   'interval_s = 60\n')
    [spec] = load_sources(load_config(str(cfg), env={}))
    assert spec.url == "postgresql+psycopg://u:secret@db.example/wh"
    assert "secret" not in repr(spec)
    cfg.write_text('[sources.api]\nkind = "inbox"\npath = "x"\ninterval_s = 60\n')
    with pytest.raises(ConfigError, match="kept for records pushed through the API"):
        load_sources(load_config(str(cfg), env={}))


def test_two_runs_of_one_inbox_at_once_apply_each_file_once(base, tmp_path):
    """Two runs of one source at the same moment (two instances): each file is claimed and
    applied by one of them only; the other finds nothing or is told another instance has it."""
    import threading

    folder = tmp_path / "inbox"
    spec = inbox_spec(folder, mode="full")
    for round_ in range(3):
        write_records(folder / f"{round_}.csv", [referral(f"R-{round_}-{n}", "2019-01-01")
                                                 for n in range(200)])
        outcomes: list = []

        def once(into: list) -> None:
            into.append(run(base, spec))

        threads = [threading.Thread(target=once, args=(outcomes,)) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(o.outcome in ("ok", "skipped") for o in outcomes), outcomes
        assert sum(o.counts.get("files_done", 0) for o in outcomes) == 1
        with base.sessions() as session:
            assert len(list(session.scalars(select(ImportRun)))) == round_ + 1
        assert len(list((folder / "done").glob("*.csv"))) == round_ + 1
