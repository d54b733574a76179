"""What the command line may do, as subprocesses (docs/cli.md, "What the command line may
do"): approving and making API tokens act as the operating-system user running the command;
another name needs the break-glass ``[cli] allow_actor_override``, and is then recorded beside
the operating-system user; a reason that shows nothing is refused."""

from __future__ import annotations

import getpass
import sqlite3
from pathlib import Path

import pytest
from cli_harness import Cli, assert_refused, write

CONTROLLERS = "code,name,email\nLA-01,Synthetic Borough Council,ig@la01.example\n"
RECORDS = """record_id,category,controller,opened_on,closed_on
R-CP,child_protection.case,LA-01,1975-01-01,1980-06-30
R-REF,safeguarding.referral,LA-01,2010-01-04,
"""
#: Strings that print nothing: a zero-width space, no-break spaces, the Hangul filler (the
#: whole table goes through the lifecycle in tests/integration/test_int_reasons.py).
INVISIBLE = ["\u200b", "\u00a0\u00a0", "\u3164"]
#: Without the harness's break-glass file: the rule as an operator meets it.
PLAIN = ("RETENTIOND_CONFIG",)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """A registry with a two-approver case (R-CP) and a one-approver case (R-REF) pending."""
    c = Cli(tmp_path, f"sqlite:///{tmp_path / 'registry.db'}")
    c.run("db", "upgrade")
    write(tmp_path / "controllers.csv", CONTROLLERS)
    write(tmp_path / "records.csv", RECORDS)
    c.run("controllers", "import", "controllers.csv")
    c.run("records", "import", "records.csv")
    c.run("evaluate")
    return c


def _ids(cli: Cli) -> dict[str, str]:
    listed = cli.run("disposals", "list", "--format", "json").json()
    return {d["record_id"]: str(d["id"]) for d in listed}


def _events(cli: Cli, kind: str) -> list[tuple[str, str]]:
    with sqlite3.connect(cli.home / "registry.db") as db:
        return db.execute("SELECT actor, data FROM audit_events WHERE kind = ? ORDER BY id",
                          (kind,)).fetchall()


def test_one_operating_system_user_cannot_approve_as_two_people(cli: Cli) -> None:
    """Without the break-glass, RETENTIOND_ACTOR or [actor] name cannot make an approval
    someone else's: the operating-system user approves once, as themselves, and a second name
    is refused, so a two-approver case stays pending review."""
    me = getpass.getuser()
    ids = _ids(cli)
    (first,) = cli.run("disposals", "approve", ids["R-CP"], "--reason", "first review",
                       "--format", "json", unset=(*PLAIN, "RETENTIOND_ACTOR")).json()
    assert first["approved_by"] == [me] and first["state"] == "pending_review"
    as_other = cli.run("disposals", "approve", ids["R-CP"], "--reason", "second review",
                       unset=PLAIN, env={"RETENTIOND_ACTOR": "officer.two"}, expect=None)
    assert_refused(as_other, f"the operating-system user {me!r}", "not 'officer.two'",
                   "$RETENTIOND_ACTOR", "[cli] allow_actor_override")
    config = write(cli.home / "named.toml", '[actor]\nname = "officer.three"\n')
    by_file = cli.run("--config", str(config), "disposals", "approve", ids["R-CP"],
                      "--reason", "third", unset=(*PLAIN, "RETENTIOND_ACTOR"), expect=None)
    assert_refused(by_file, "not 'officer.three'", "[actor] name")
    again = cli.run("disposals", "approve", ids["R-CP"], "--reason", "again",
                    unset=PLAIN, env={"RETENTIOND_ACTOR": me}, expect=None)
    assert_refused(again, "already approved")
    (case,) = [d for d in cli.run("disposals", "list", "--format", "json").json()
               if d["record_id"] == "R-CP"]
    assert (case["state"], case["approved_by"]) == ("pending_review", [me])
    # Acts that are not a separation of duty still take the name given.
    (deferred,) = cli.run("disposals", "defer", ids["R-REF"], "--until", "2099-01-01",
                          "--reason", "later", "--format", "json", unset=PLAIN,
                          env={"RETENTIOND_ACTOR": "officer.two"}).json()
    assert deferred["state"] == "deferred"
    assert _events(cli, "DisposalDeferred")[0][0] == "officer.two"


def test_break_glass_approval_records_the_operating_system_user(cli: Cli) -> None:
    """With [cli] allow_actor_override = true an approval may take another name; its audit
    event and a warning log line carry the operating-system user beside it."""
    me = getpass.getuser()
    ids = _ids(cli)
    result = cli.run("disposals", "approve", ids["R-REF"], "--reason", "reviewed",
                     "--format", "json", env={"RETENTIOND_ACTOR": "officer.two"})
    assert result.json()[0]["approved_by"] == ["officer.two"]
    (line,) = [entry for entry in result.log_lines if entry["event"] == "actor_override"]
    assert (line["actor"], line["os_user"], line["level"]) == ("officer.two", me, "warning")
    ((actor, data),) = _events(cli, "DisposalApproved")
    assert actor == "officer.two" and f'"os_user": "{me}"' in data.replace('":"', '": "')


def test_a_token_is_made_as_oneself_on_the_command_line(cli: Cli) -> None:
    """`users token NAME` makes a token only when NAME is the one running the command: for
    anyone else it is refused; the break-glass lets an operator act as NAME, recorded."""
    me = getpass.getuser()
    for name in (me, "svc.export"):
        cli.run("users", "add", name, "--role", "auditor", "--oidc-only")
    refused = cli.run("users", "token", "svc.export", "--name", "export", unset=PLAIN,
                      env={"RETENTIOND_ACTOR": me}, expect=None)
    assert_refused(refused, "a token is made by its own user only")
    impersonating = cli.run("users", "token", "svc.export", "--name", "export", unset=PLAIN,
                            env={"RETENTIOND_ACTOR": "svc.export"}, expect=None)
    assert_refused(impersonating, "[cli] allow_actor_override")
    own = cli.run("users", "token", me, "--name", "mine", unset=(*PLAIN, "RETENTIOND_ACTOR"))
    assert own.out.startswith("rtd_")
    glass = cli.run("users", "token", "svc.export", "--name", "export",
                    env={"RETENTIOND_ACTOR": "svc.export"})
    assert glass.out.startswith("rtd_")
    tokens = cli.run("users", "tokens", "--format", "json").json()
    assert sorted((t["username"], t["issued_by"]) for t in tokens) == sorted(
        [(me, me), ("svc.export", "svc.export")])
    made = _events(cli, "ApiTokenCreated")
    assert [actor for actor, _ in made] == [me, "svc.export"]
    assert "os_user" not in made[0][1] and me in made[1][1]
    revoked = cli.run("users", "revoke-token", str(tokens[0]["id"]), "--format", "json").json()
    assert revoked[0]["revoked_at"] is not None


@pytest.mark.parametrize("text", INVISIBLE,
                         ids=["-".join(f"U+{ord(c):04X}" for c in t if c != " ") for t in INVISIBLE])
def test_a_reason_that_shows_nothing_is_refused(cli: Cli, text: str) -> None:
    """Approve, defer, reject, place and lift a hold: a reason of invisible characters only
    is refused with exit 1, naming what is missing, and changes nothing."""
    ids = _ids(cli)
    before = cli.run("disposals", "list", "--format", "json").out
    for args in (("disposals", "approve", ids["R-REF"]),
                 ("disposals", "defer", ids["R-REF"], "--until", "2099-01-01"),
                 ("disposals", "reject", ids["R-REF"]),
                 ("holds", "place", "--scope", "record:R-REF", "--type", "legal")):
        assert_refused(cli.run(*args, "--reason", text, expect=None), "reason",
                       "at least one visible character")
    hold = cli.run("holds", "place", "--scope", "record:R-CP", "--type", "legal",
                   "--reason", "synthetic claim", "--format", "json").json()[0]
    assert_refused(cli.run("holds", "lift", str(hold["id"]), "--reason", text, expect=None),
                   "lifting a hold needs a reason", "at least one visible character")
    after = {d["record_id"]: d for d in cli.run("disposals", "list", "--format", "json").json()}
    assert after["R-CP"]["state"] == "held"
    assert before.count('"state": "pending_review"') == 2
    assert after["R-REF"]["state"] == "pending_review"
