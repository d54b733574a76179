"""The ``retentiond`` command's contract as a subprocess on SQLite: exit statuses, the one-line
``retentiond: error: ...`` first line of every refusal, ``policies check``, and configuration
by ``--config FILE`` and by environment variables (docs/cli.md, docs/configuration.md)."""

from __future__ import annotations

import shutil

import pytest
from cli_harness import DEFAULT_PACK, Cli, assert_refused, write

from retentiond.clock import SystemClock
from retentiond.ingest.controllers import import_controllers
from retentiond.ingest.records import import_records
from retentiond.lifecycle.context import Context
from retentiond.policy import load_policy_set
from retentiond.registry.db import make_engine, session_factory

CHECK_VALID_KEYS = {"valid", "version", "packs", "rules", "categories", "needs_local_signoff",
                    "warnings"}

BAD_PACK = """[pack]
name = "bad-pack"
title = "A synthetic pack with mistakes"

[[rules]]
id = "bad.referral"
category = "safeguarding.referral"
trigger = "opened_on"
period = "six years"
action = "shred"
citation = "none"
"""


@pytest.fixture
def cli(tmp_path, sqlite_template):
    """A migrated SQLite registry with a controller and two due records. Set up in-process
    (the lifecycle test drives these steps as subprocesses), to keep the suite fast."""
    path = tmp_path / "registry.db"
    shutil.copy(sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    ctx = Context(sessions=session_factory(engine), policy=load_policy_set([DEFAULT_PACK]),
                  clock=SystemClock(), actor="setup")
    import_controllers(ctx, write(tmp_path / "c.csv",
                                  "code,name,email\nLA-01,Synthetic Council,ig@la01.example\n"))
    import_records(ctx, write(tmp_path / "r.csv", "record_id,category,controller,opened_on\n"
                              "R-1,safeguarding.referral,LA-01,2010-01-01\n"
                              "R-2,safeguarding.referral,LA-01,2010-02-01\n"))
    engine.dispose()
    return Cli(tmp_path, f"sqlite:///{path}")


def test_policies_check_good_pack(cli):
    """A good pack checks with exit 0, in text and in JSON with the documented keys."""
    text = cli.run("policies", "check", str(DEFAULT_PACK))
    assert text.out.startswith("valid: 4 rules in 1 pack(s), 4 categories; version ")
    doc = cli.run("policies", "check", str(DEFAULT_PACK), "--format", "json").json()
    assert set(doc) == CHECK_VALID_KEYS
    assert (doc["valid"], doc["rules"], doc["needs_local_signoff"]) == (True, 4, [])


def test_policies_report_writes_pdf_and_html(cli, tmp_path):
    """policies report writes a PDF and an HTML page for both shipped packs and prints the
    report's SHA-256, which both editions carry; the PDF's text names every rule."""
    import re
    import shutil
    import subprocess

    from retentiond.policy import load_policy_set

    wider = DEFAULT_PACK.with_name("england-wider.toml")
    result = cli.run("policies", "report", str(DEFAULT_PACK), str(wider),
                     "--out", str(tmp_path / "signoff.pdf"))
    (sha,) = re.findall(r"^report sha256: ([0-9a-f]{64})$", result.out, re.M)
    assert f'signed_off_report_sha256 = "{sha}"' in result.out
    pdf, page = tmp_path / "signoff.pdf", tmp_path / "signoff.html"
    assert pdf.read_bytes().startswith(b"%PDF-")
    html = page.read_text(encoding="utf-8")
    assert sha in html and "Sign-off" in html
    rules = load_policy_set([DEFAULT_PACK, wider]).rules
    if shutil.which("pdftotext"):
        text = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], check=True,
                              capture_output=True, text=True).stdout
        flat = " ".join(text.split())
        assert sha in flat and "agreement.termination" in flat
        for rule in rules:
            assert rule.id in flat, rule.id
    doc = cli.run("policies", "check", str(wider), "--format", "json").json()
    assert doc["warnings"] and all("wider.education.sen_record" in w for w in doc["warnings"])


def test_policies_check_bad_pack(cli, tmp_path):
    """A bad pack is refused with exit 1, naming the file, the rule and each wrong field."""
    bad = write(tmp_path / "bad.toml", BAD_PACK)
    result = cli.run("policies", "check", str(bad), expect=1)
    assert_refused(result, "policy refused: 2 problem(s)",
                   f"{bad}: rule 'bad.referral'.period:",
                   f"{bad}: rule 'bad.referral'.action: unknown action 'shred'")
    doc = cli.run("policies", "check", str(bad), "--format", "json", expect=1).json()
    assert set(doc) == {"valid", "problems"} and doc["valid"] is False
    assert sorted(p.split(": ")[1] for p in doc["problems"]) == [
        "rule 'bad.referral'.action", "rule 'bad.referral'.period"]


def test_bad_policy_in_force_refuses_commands(cli, tmp_path):
    """A command refuses to work under a bad policy set, naming the problem."""
    bad = write(tmp_path / "bad.toml", BAD_PACK)
    result = cli.run("evaluate", env={"RETENTIOND_POLICIES": str(bad)}, expect=None)
    assert_refused(result, "policy refused", "rule 'bad.referral'.action")


#: (argv, fragments of the error, files to write first)
REFUSALS = [
    pytest.param(("records", "explain", "R-NOPE"), ["no record 'R-NOPE'"], id="unknown-record"),
    pytest.param(("disposals", "approve", "999", "--reason", "x"), ["no disposal 999"],
                 id="unknown-disposal"),
    pytest.param(("disposals", "approve", "abc", "--reason", "x"), ["'abc' is not a disposal id"],
                 id="bad-disposal-id"),
    pytest.param(("disposals", "defer", "1", "--until", "2000-01-01", "--reason", "x"),
                 ["must be after today"], id="defer-in-past"),
    pytest.param(("holds", "place", "--scope", "record:R-NOPE", "--type", "legal",
                  "--reason", "x"), ["no record 'R-NOPE'"], id="hold-unknown-record"),
    pytest.param(("holds", "place", "--scope", "box:1", "--type", "legal", "--reason", "x"),
                 ["scope 'box:1' is not one of"], id="hold-unknown-scope"),
    pytest.param(("holds", "lift", "999", "--reason", "x"), ["no hold 999"],
                 id="lift-unknown-hold"),
    pytest.param(("evaluate", "--as-of", "2999-01-01"), ["after today"], id="evaluate-future"),
    pytest.param(("forecast", "--as-of", "2030-01-01", "--until", "2029-01-01"),
                 ["before --as-of"], id="forecast-reversed"),
    pytest.param(("disposals", "list", "--state", "gone"), ["unknown state 'gone'"],
                 id="unknown-state"),
    pytest.param(("agreements", "terminate", "ISA-99", "--on", "2026-01-01"),
                 ["no agreement 'ISA-99'"], id="unknown-agreement"),
    pytest.param(("--config", "nowhere.toml", "evaluate"), ["nowhere.toml: no such config file"],
                 id="missing-config"),
]


@pytest.mark.parametrize(("argv", "fragments"), REFUSALS)
def test_refusal_is_exit_1_with_one_error_line(cli, argv, fragments):
    """A refused command exits 1; the first line on stderr, and the only one that is not a
    log line, is 'retentiond: error: ...' saying why; nothing goes to stdout."""
    result = cli.run(*argv, expect=None)
    assert_refused(result, *fragments)
    assert len(result.error_lines) == 1, result.err
    assert result.out == ""


def test_bad_import_lists_every_problem_then_logs(cli, tmp_path):
    """A refused import exits 1: the error line comes first, then each problem with file:line
    and field, indented; the refusal is logged (counts only) after them."""
    path = write(tmp_path / "bad.csv", "record_id,category,controller,opened_on\n"
                 "R-3,safeguarding.referral,LA-01,2010-01-01\n"
                 "R-4,safeguarding.referal,LA-01,2010-01-01\n"
                 "R-5,safeguarding.referral,LA-99,2010-01-01\n"
                 "R-6,safeguarding.referral,LA-01,2023-02-29\n")
    result = cli.run("records", "import", str(path), expect=1)
    assert_refused(result, "nothing applied: 3 problem(s)")
    assert result.error_lines[1:] == [
        f"  {path}:3: category: unknown category 'safeguarding.referal': no rule in the policy "
        "set covers it (known: child_protection.case, education.pupil_record, "
        "looked_after.case_record, safeguarding.referral)",
        f"  {path}:4: controller: unknown controller 'LA-99': import it first with "
        "'retentiond controllers import'",
        f"  {path}:5: opened_on: '2023-02-29' is not a real date (day is out of range for month)",
    ]
    (logged,) = result.log_lines
    assert (logged["event"], logged["file"], logged["problems"]) == ("import_refused", "bad.csv", 3)
    assert result.err.splitlines()[-1].startswith("{") and "2023-02-29" not in str(logged)
    assert_refused(cli.run("records", "explain", "R-3", expect=None), "no record 'R-3'")
    missing = cli.run("records", "import", "missing.csv", expect=1)
    assert_refused(missing, "missing.csv refused, nothing applied", "cannot be read")


def test_unmigrated_database_is_refused(tmp_path):
    """Every command refuses a missing, empty or old database and says to run db upgrade; a
    missing SQLite file is not created by the refusal."""
    db = tmp_path / "empty.db"
    cli = Cli(tmp_path, f"sqlite:///{db}")
    result = cli.run("disposals", "list", expect=None)
    assert_refused(result, f"there is no registry database at {db}", "retentiond db upgrade")
    assert not db.exists()
    db.touch()
    assert_refused(cli.run("disposals", "list", expect=None), "is empty (it has no schema yet)",
                   "retentiond db upgrade")
    assert "none (empty database)" in cli.run("db", "status", expect=1).out


def test_unreachable_database_is_one_error_line(tmp_path):
    """A database that cannot be reached gives one error line first, without SQL detail."""
    cli = Cli(tmp_path, "postgresql://postgres@127.0.0.1:1/retentiond_nowhere")
    result = cli.run("evaluate", expect=None)
    assert_refused(result, "OperationalError")
    assert len(result.error_lines) == 1, result.err
    assert [line["event"] for line in result.log_lines] == ["command_failed"]


@pytest.mark.parametrize("argv", [
    pytest.param(("evaluate", "--as-of", "22/11/2026"), id="bad-date"),
    pytest.param(("holds", "place", "--scope", "record:R-1", "--type", "whim", "--reason", "x"),
                 id="bad-choice"),
    pytest.param(("records", "explain"), id="missing-argument"),
    pytest.param(("frobnicate",), id="unknown-command"),
])
def test_usage_error_is_exit_2(cli, argv):
    """A usage error (bad date, bad choice, missing argument, unknown command) exits 2."""
    result = cli.run(*argv, expect=2)
    assert "error:" in result.err and result.out == ""


def test_config_file_and_environment(cli, tmp_path):
    """--config FILE sets the database, policies and actor (before or after the command name);
    an environment variable overrides the file."""
    config = write(tmp_path / "retentiond.toml", f"""
[database]
url = "sqlite:///{tmp_path / 'registry.db'}"

[policies]
paths = ["{DEFAULT_PACK}"]

[actor]
name = "officer.from.config"

[cli]
allow_actor_override = true

[logging]
level = "warning"
""")
    bare = ("RETENTIOND_DATABASE_URL", "RETENTIOND_POLICIES", "RETENTIOND_ACTOR")
    # Without the file or the variables, the default registry (under $HOME) is empty.
    assert_refused(cli.run("evaluate", unset=bare, expect=None), "retentiond db upgrade")
    queued = cli.run("--config", str(config), "evaluate", "--format", "json", unset=bare).json()
    assert queued["queued"] == 2
    listed = cli.run("disposals", "list", "--format", "json", "--config", str(config),
                     unset=bare).json()
    first, second = (str(d["id"]) for d in listed)
    by_file = cli.run("disposals", "approve", first, "--reason", "ok", "--format", "json",
                      "--config", str(config), unset=bare).json()
    assert by_file[0]["approved_by"] == ["officer.from.config"]
    by_env = cli.run("disposals", "approve", second, "--reason", "ok", "--format", "json",
                     "--config", str(config), unset=bare[:2],
                     env={"RETENTIOND_ACTOR": "officer.from.env"}).json()
    assert by_env[0]["approved_by"] == ["officer.from.env"]
    via_env = cli.run("disposals", "list", "--state", "approved", "--format", "json",
                      unset=bare, env={"RETENTIOND_CONFIG": str(config)}).json()
    assert len(via_env) == 2


def test_bad_config_is_refused_naming_file_and_key(cli, tmp_path):
    """A config file with an unknown section or a wrong type is refused naming file and key."""
    unknown = write(tmp_path / "unknown.toml", "[databse]\nurl = 'sqlite:///x.db'\n")
    assert_refused(cli.run("--config", str(unknown), "evaluate", expect=None),
                   f"{unknown}: unknown section [databse]")
    wrong = write(tmp_path / "wrong.toml", "[actor]\nname = 7\n")
    assert_refused(cli.run("--config", str(wrong), "evaluate", expect=None),
                   f"{wrong}: [actor].name: must be a str")


def test_success_exits_0_and_prints_to_stdout(cli):
    """Successful commands exit 0, print their output on stdout and no error."""
    result = cli.run("evaluate")
    assert result.out.startswith("evaluated as of ") and result.error_lines == []
    table = cli.run("disposals", "list").out.splitlines()
    assert table[0].split() == ["id", "record_id", "category", "controller", "state", "due_on",
                                "action", "approvals"]
    assert len(table) == 4
