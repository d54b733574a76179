"""``retentiond disposals approve|defer|reject --matching`` as a subprocess: the count first,
then the action with ``--expect``, refused when the count moved (docs/cli.md)."""

from __future__ import annotations

from cli_harness import Cli, assert_refused, write

CONTROLLERS = """code,name,email
SCH-01,Synthetic Primary School One,dpo@sch01.example
LA-01,Synthetic Borough Council,ig@la01.example
"""
RECORDS = """\
record_id,category,controller,system,locator,opened_on,closed_on
R-1,safeguarding.referral,LA-01,case-files,cf/1,2010-01-04,
R-2,safeguarding.referral,LA-01,case-files,cf/2,2010-02-01,
R-3,safeguarding.referral,SCH-01,case-files,cf/3,2010-03-01,
R-CP,child_protection.case,LA-01,paper,box/7,1975-01-01,1980-06-30
R-HOLD,safeguarding.referral,LA-01,mis,m/4,2011-05-05,
"""
MATCHING_KEYS = {"verb", "matching", "acted", "completed", "waiting", "left_out", "event_id"}
PREVIEW_KEYS = {"verb", "criteria", "gone_at_source", "matching", "acting", "left_out"}


def test_approve_and_reject_by_filter_from_a_terminal(tmp_path):
    """Without --expect the command counts and changes nothing; with the count it acts; a
    stale count is refused with nothing changed; the audit chain verifies."""
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}")
    cli.run("db", "upgrade")
    write(tmp_path / "controllers.csv", CONTROLLERS)
    cli.run("controllers", "import", "controllers.csv")
    write(tmp_path / "records.csv", RECORDS)
    cli.run("records", "import", "records.csv")
    cli.run("evaluate")
    cli.run("holds", "place", "--scope", "record:R-HOLD", "--type", "legal", "--reason", "claim")
    filters = ("--matching", "--controller", "LA-01")

    preview = cli.run("disposals", "approve", *filters, "--reason", "batch", "--format", "json")
    doc = preview.json()
    assert set(doc) == PREVIEW_KEYS
    assert (doc["matching"], doc["acting"]) == (3, 3)
    assert "--expect 3" in preview.err
    text = cli.run("disposals", "approve", *filters, "--state", "any", "--reason", "batch").out
    assert "would act on 3 of the 4 cases selected" in text
    assert "left out: 1 is under a hold" in text

    stale = cli.run("disposals", "approve", *filters, "--reason", "batch", "--expect", "4",
                    expect=None)
    assert_refused(stale, "now selects 3", "not the 4 you confirmed", "nothing was changed")
    assert all(d["approved_by"] == [] for d in cli.run(
        "disposals", "list", "--format", "json").json())

    done = cli.run("disposals", "approve", *filters, "--reason", "batch", "--expect", "3",
                   "--format", "json").json()
    assert set(done) == MATCHING_KEYS
    assert (done["acted"], done["completed"], done["waiting"]) == (3, 2, 1)
    second = cli.run("disposals", "approve", *filters, "--reason", "second", "--expect", "1",
                     env=cli.as_actor("officer.two")).out
    assert "1 now approved" in second

    rejected = cli.run("disposals", "reject", "--matching", "--controller", "SCH-01",
                       "--reason", "keep", "--expect", "1", "--format", "json").json()
    assert rejected["acted"] == 1
    states = {d["record_id"]: d["state"] for d in cli.run(
        "disposals", "list", "--format", "json").json()}
    assert states == {"R-1": "approved", "R-2": "approved", "R-3": "rejected",
                      "R-CP": "approved", "R-HOLD": "held"}
    cli.run("audit", "verify")

    both = cli.run("disposals", "approve", "1", "--matching", "--reason", "x", expect=None)
    assert_refused(both, "name no ids")
    unknown = cli.run("disposals", "approve", "--matching", "--controller", "NOPE",
                      "--reason", "x", expect=None)
    assert_refused(unknown, "controller: no controller 'NOPE'")
