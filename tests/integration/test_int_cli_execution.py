"""The command line end to end: terminate an agreement, execute the return; manual tasks;
failures visible in 'disposals list --state failed'. Uses the real clock, so dates are
relative to today."""

from __future__ import annotations

import csv
import io
import json

import msoffcrypto
import openpyxl
import pytest
import structlog
from dateutil.relativedelta import relativedelta
from execution_support import PASSWORD, holding_database, holding_upns, make_holding

from retentiond.cli.main import main
from retentiond.clock import SystemClock

ROOT_PACK = __import__("conftest").DEFAULT_PACK


@pytest.fixture
def holding_url(database_url, tmp_path):
    """A holding database beside the registry, on the same backend."""
    yield from holding_database(database_url, tmp_path)


@pytest.fixture
def cli(database_url, holding_url, tmp_path, monkeypatch, capsys):
    """Run ``retentiond --config FILE ...`` in process; return (exit status, stdout)."""
    (tmp_path / "mis.url").write_text(holding_url)
    (tmp_path / "passwords").mkdir()
    (tmp_path / "passwords" / "SCH-01").write_text(PASSWORD)
    (tmp_path / "files").mkdir()
    config = tmp_path / "retentiond.toml"
    config.write_text(f"""
[database]
url = "{database_url}"
[policies]
paths = ["{ROOT_PACK}"]
[connectors.mis]
kind = "sql"
url_file = "mis.url"
table = "pupils"
key_column = "upn"
children = [{{ table = "pupil_marks", key_column = "upn" }}]
[connectors.casefiles]
kind = "filesystem"
systems = ["files"]
root = "files"
[connectors.paper]
kind = "manual"
[connectors.returns]
kind = "return"
drop_dir = "drop"
password_dir = "passwords"
""")
    # Approving acts as the operating-system user running the command (docs/cli.md).
    monkeypatch.delenv("RETENTIOND_ACTOR", raising=False)

    def run(*argv):
        capsys.readouterr()
        status = main(["--config", str(config), *argv])
        return status, capsys.readouterr().out

    # main() points structlog at this test's captured stderr: put it back afterwards.
    saved = structlog.get_config()
    yield run
    structlog.configure(**saved)


def _write(path, header, rows):
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


def test_agreement_termination_returns_the_records(cli, tmp_path, holding_url):
    """Terminated with one month's notice: the agreement's records fall due with action return,
    and executing them delivers a decryptable package and deletes the source."""
    today = SystemClock().today()
    make_holding(holding_url, ["U1", "U2"])
    assert cli("controllers", "import", _write(tmp_path / "c.csv", ("code", "name", "email"),
               [("SCH-01", "School One", "dpo@sch01.example")]))[0] == 0
    assert cli("agreements", "add", "ISA-1", "--title", "Educational indicators",
               "--notice", "1m", "--action", "return")[0] == 0
    young = (today - relativedelta(years=10)).isoformat()
    assert cli("records", "import", _write(
        tmp_path / "r.csv",
        ("record_id", "category", "controller", "system", "locator", "subject_ref",
         "date_of_birth", "agreement"),
        [("R1", "education.pupil_record", "SCH-01", "mis", "U1", "S-1", young, "ISA-1"),
         ("R2", "education.pupil_record", "SCH-01", "mis", "U2", "S-2", young, "")]))[0] == 0
    on = today - relativedelta(months=2)
    status, out = cli("agreements", "terminate", "ISA-1", "--on", on.isoformat())
    assert status == 0 and f"due on {on + relativedelta(months=1)}" in out
    assert cli("evaluate")[0] == 0
    cases = json.loads(cli("disposals", "list", "--format", "json")[1])
    assert [(c["record_id"], c["action"]) for c in cases] == [("R1", "return")]
    assert cli("disposals", "approve", str(cases[0]["id"]), "--reason",
               "agreement terminated; notice served")[0] == 0
    status, out = cli("disposals", "execute", "--format", "json")
    assert status == 0 and json.loads(out)["executed"] == 1
    package = tmp_path / "drop" / "SCH-01" / f"retentiond-disposal-{cases[0]['id']}.xlsx"
    office = msoffcrypto.OfficeFile(io.BytesIO(package.read_bytes()))
    office.load_key(password=PASSWORD)
    plain = io.BytesIO()
    office.decrypt(plain)
    plain.seek(0)
    assert [r[0] for r in openpyxl.load_workbook(plain)["pupils"].values] == ["upn", "U1"]
    assert holding_upns(holding_url)[0] == {"U2"}
    done = json.loads(cli("disposals", "list", "--state", "executed", "--format", "json")[1])
    assert [(c["record_id"], c["action"]) for c in done] == [("R1", "return")]


def test_manual_task_confirmed_from_the_command_line(cli, tmp_path, holding_url):
    """disposals execute opens a task; disposals tasks lists it; disposals confirm closes it."""
    today = SystemClock().today()
    make_holding(holding_url, [])
    cli("controllers", "import", _write(tmp_path / "c.csv", ("code", "name", "email"),
                                        [("SCH-01", "School One", "dpo@sch01.example")]))
    old = (today - relativedelta(years=26)).isoformat()
    header = ("record_id", "category", "controller", "system", "locator", "subject_ref",
              "date_of_birth")
    paper = ("P1", "education.pupil_record", "SCH-01", "paper", "box 7", "S-1", old)
    # A locator the files connector cannot name is refused at import, the file whole.
    assert cli("records", "import", _write(tmp_path / "r.csv", header, [
        paper, ("F1", "education.pupil_record", "SCH-01", "files", "../../etc", "S-2", old)]
    ))[0] != 0
    assert cli("records", "import", _write(tmp_path / "r.csv", header, [paper]))[0] == 0
    cli("evaluate")
    ids = [c["id"] for c in json.loads(cli("disposals", "list", "--format", "json")[1])]
    cli("disposals", "approve", *map(str, ids), "--reason", "due")
    status, out = cli("disposals", "execute")
    assert status == 0 and "1 pending confirmation" in out
    tasks = json.loads(cli("disposals", "tasks", "--format", "json")[1])
    assert [(t["record_id"], t["locator"]) for t in tasks] == [("P1", "box 7")]
    status, out = cli("disposals", "confirm", str(tasks[0]["disposal_id"]),
                      "--destroyed-by", "Shred-It Ltd", "--destroyed-on", today.isoformat(),
                      "--method", "cross-cut shredding", "--certificate", "CD-1",
                      "--format", "json")
    assert status == 0 and json.loads(out)[0]["state"] == "executed"
    assert json.loads(cli("disposals", "tasks", "--format", "json")[1]) == []
