"""Staged review on the command line, as an operator runs it: review groups, members and
scopes; a scoped reviewer's list and refusals; exceptions, comments, resuming, and a
cooling-off cancelled (issue 14). Synthetic data only."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_harness import DEFAULT_PACK, Cli, assert_refused, write

CONTROLLERS = """code,name,email
SCH-01,Synthetic Primary School One,dpo@sch01.example
SCH-02,Synthetic Primary School Two,dpo@sch02.example
"""
RECORDS = """record_id,category,controller,subject_ref,date_of_birth
R-1,education.pupil_record,SCH-01,S-1,2000-01-01
R-2,education.pupil_record,SCH-02,S-2,2000-02-01
R-3,education.pupil_record,SCH-01,S-3,2000-03-01
"""
STAGES = ('stages = [{ name = "service", group = "service-managers" }, '
          '{ name = "ig", group = "ig" }]\ncooling_off_days = 7\n')


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    text = DEFAULT_PACK.read_text(encoding="utf-8")
    head, marker, tail = text.partition('id = "isa.education.pupil_record"')
    pack = write(tmp_path / "staged.toml",
                 head + marker + tail.replace("approvals_required = 1\n", STAGES, 1))
    c = Cli(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}")
    c.env["RETENTIOND_POLICIES"] = str(pack)
    c.run("db", "upgrade")
    write(tmp_path / "controllers.csv", CONTROLLERS)
    write(tmp_path / "records.csv", RECORDS)
    c.run("controllers", "import", "controllers.csv")
    c.run("records", "import", "records.csv")
    c.run("evaluate")
    for user, role in (("manager.sch01", "approver"), ("officer.ig", "approver,ig_officer")):
        c.run("users", "add", user, "--role", role, "--oidc-only")
    c.run("groups", "add", "Service-Managers", "--label", "Service managers")
    c.run("groups", "add", "ig")
    c.run("groups", "members", "add", "service-managers", "manager.sch01")
    c.run("groups", "members", "add", "ig", "officer.ig")
    c.run("users", "scope", "manager.sch01", "--controller", "SCH-01")
    return c


def _ids(cli: Cli) -> dict[str, str]:
    listed = cli.run("disposals", "list", "--format", "json").json()
    return {d["record_id"]: str(d["id"]) for d in listed}


def test_policies_show_names_the_stages(cli: Cli) -> None:
    out = cli.run("policies", "show").out
    assert "approved in 2 stages, in order, each by a different person" in out
    assert "stage 1. service: group service-managers" in out
    assert "cooling-off: 7 days after the last approval" in out


def test_groups_and_scopes_are_listed(cli: Cli) -> None:
    groups = cli.run("groups", "list", "--format", "json").json()
    assert [(g["name"], g["members"]) for g in groups] == [
        ("ig", ["officer.ig"]), ("service-managers", ["manager.sch01"])]
    out = cli.run("users", "scope", "manager.sch01", "--show").out
    assert "SCH-01 / any category" in out
    assert_refused(cli.run("groups", "scope", "ig", "--controller", "SCH-99", expect=None),
                   "--controller: there is no controller 'SCH-99'")
    assert_refused(cli.run("groups", "add", "i g", expect=None), "group: ", "group name")


def test_staged_review_on_the_command_line(cli: Cli) -> None:
    ids = _ids(cli)
    manager, ig = cli.as_actor("manager.sch01"), cli.as_actor("officer.ig")
    mine = cli.run("disposals", "list", "--format", "json", env=manager).json()
    assert sorted(d["record_id"] for d in mine) == ["R-1", "R-3"]
    assert_refused(cli.run("disposals", "approve", ids["R-2"], "--reason", "x", env=manager,
                           expect=None), f"no disposal {ids['R-2']} in your review scope")
    assert_refused(cli.run("disposals", "approve", ids["R-1"], "--reason", "x", env=ig,
                           expect=None), "waits for stage 1 of 2 (service)")
    table = cli.run("disposals", "list").out
    assert "stage 1/2 (service-managers)" in table
    cli.run("disposals", "approve", ids["R-1"], "--reason", "checked", env=manager)
    (case,) = cli.run("disposals", "approve", ids["R-1"], "--reason", "agreed", "--format",
                      "json", env=ig).json()
    assert case["state"] == "cooling_off" and case["cooling_until"]
    (case,) = cli.run("disposals", "cancel-cooling", ids["R-1"], "--reason", "parent query",
                      "--format", "json", env=ig).json()
    assert case["state"] == "pending_review" and case["stage"] == 0
    cli.run("disposals", "comment", ids["R-3"], "--text", "school asked to keep it",
            env=manager)
    (case,) = cli.run("disposals", "exception", ids["R-3"], "--reason", "still needed",
                      "--format", "json", env=manager).json()
    assert case["state"] == "exception"
    (case,) = cli.run("disposals", "resume", ids["R-3"], "--reason", "checked with school",
                      "--format", "json", env=ig).json()
    assert case["state"] == "pending_review"


def test_exceptions_act_as_the_operating_system_user(cli: Cli) -> None:
    """Without the break-glass, another name cannot raise an exception (its scope would be
    someone else's)."""
    ids = _ids(cli)
    result = cli.run("disposals", "exception", ids["R-1"], "--reason", "x",
                     env=cli.as_actor("manager.sch01"), unset=("RETENTIOND_CONFIG",),
                     expect=None)
    assert_refused(result, "raising an exception acts as the person running it")
