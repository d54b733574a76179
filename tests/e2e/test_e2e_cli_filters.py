"""Saved filters and a hold scoped by one, from a terminal (``retentiond filters ...`` and
``holds place --scope filter:NAME``), against a fresh SQLite registry (docs/cli.md)."""

from __future__ import annotations

from cli_harness import Cli, assert_refused, write

FILTER_KEYS = {"id", "name", "criteria", "description", "owner", "created_at", "holds"}
CONTROLLERS = """code,name,email
SCH-01,Synthetic Primary School One,dpo@sch01.example
LA-01,Synthetic Borough Council,ig@la01.example
"""
RECORDS = """\
record_id,category,controller,opened_on
R-1,safeguarding.referral,LA-01,2010-01-04
R-2,safeguarding.referral,LA-01,2012-02-01
R-3,safeguarding.referral,SCH-01,2010-03-01
"""


def test_save_a_filter_and_hold_by_it_from_a_terminal(tmp_path):
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'var' / 'registry.db'}")
    cli.run("db", "upgrade")
    write(tmp_path / "controllers.csv", CONTROLLERS)
    cli.run("controllers", "import", "controllers.csv")
    write(tmp_path / "records.csv", RECORDS)
    cli.run("records", "import", "records.csv")

    assert_refused(cli.run("filters", "save", "bad", "--due-to", "2017-02-30", expect=None),
                   "due_to: '2017-02-30' is not a date")
    (saved,) = cli.run("filters", "save", "LA before 2017", "--controller", "LA-01",
                       "--due-to", "2016-12-31", "--state", "pending_review",
                       "--format", "json").json()
    assert set(saved) == FILTER_KEYS
    assert saved["criteria"] == {"controller": "LA-01", "due_to": "2016-12-31",
                                 "state": "pending_review"}
    assert saved["description"].startswith("records of controller LA-01 due on or before "
                                           "31 December 2016")
    assert cli.run("filters", "show", str(saved["id"]), "--format", "json").json() == [saved]
    assert "LA before 2017" in cli.run("filters", "list").out

    (hold,) = cli.run("holds", "place", "--scope", "filter:LA before 2017", "--type", "legal",
                      "--reason", "synthetic claim", "--format", "json").json()
    assert (hold["scope"], hold["records_covered"]) == ("filter:LA before 2017", 1)
    assert hold["criteria"] == {"controller": "LA-01", "due_to": "2016-12-31"}
    cli.run("evaluate")
    queued = {d["record_id"] for d in cli.run("disposals", "list", "--format", "json").json()}
    assert queued == {"R-2", "R-3"}  # R-1 is held; R-2 is due after 2016; R-3 is SCH-01's

    (gone,) = cli.run("filters", "delete", "LA before 2017", "--format", "json").json()
    assert gone["holds"] == [hold["id"]]
    assert cli.run("filters", "list", "--format", "json").json() == []
    (still,) = cli.run("holds", "list", "--format", "json").json()
    assert (still["criteria"], still["records_covered"]) == (hold["criteria"], 1)
    assert_refused(cli.run("holds", "place", "--scope", "filter:LA before 2017", "--type",
                           "legal", "--reason", "again", expect=None),
                   "no saved filter 'LA before 2017'")


def test_import_holds_from_a_terminal(tmp_path):
    """``holds import FILE``: a refused file names each line and field and places nothing;
    a good one places every hold and says how many."""
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'var' / 'registry.db'}")
    cli.run("db", "upgrade")
    write(tmp_path / "controllers.csv", CONTROLLERS)
    cli.run("controllers", "import", "controllers.csv")
    write(tmp_path / "records.csv", RECORDS)
    cli.run("records", "import", "records.csv")

    write(tmp_path / "bad.csv", "scope,type,reason,until\nrecord:R-1,legal,claim,\n"
          "record:R-9,legal,claim,\ncontroller:LA-01,whim,claim,\n")
    refused = cli.run("holds", "import", "bad.csv", expect=None)
    assert_refused(refused, "bad.csv refused, nothing applied: 2 problem(s)",
                   "bad.csv:3: scope: no record 'R-9'", "bad.csv:4: type: hold type 'whim'")
    assert cli.run("holds", "list", "--format", "json").json() == []

    write(tmp_path / "holds.csv", "scope,type,reason,until\nrecord:R-1,legal,claim,\n"
          "controller:SCH-01,complaint,synthetic complaint,9999-12-31\n")
    placed = cli.run("holds", "import", "holds.csv")
    assert placed.out.startswith("holds.csv: 2 holds placed (ids ")
    holds = cli.run("holds", "list", "--format", "json").json()
    assert sorted((h["scope"], h["until"]) for h in holds) == [
        ("controller:SCH-01", "9999-12-31"), ("record:R-1", None)]
    cli.run("evaluate")
    queued = {d["record_id"] for d in cli.run("disposals", "list", "--format", "json").json()}
    assert queued == {"R-2"}
