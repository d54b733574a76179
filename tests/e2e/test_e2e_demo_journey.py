"""The demo's whole journey in a browser, against what ``./dev run`` starts (``retentiond demo
run``, as a subprocess, on free ports): an approver approves a school's case; the daemon
deletes its data from the holding system, executes the case, issues a certificate and mails
the notice; the school acknowledges it from the link in that mail.

Screenshots of each step go to the test's folder, and to ``$RETENTIOND_SCREENSHOTS`` when set
(``RETENTIOND_SCREENSHOTS=docs/img`` refreshes the README's).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from web_harness import chromium, free_port

pytestmark = pytest.mark.slow

SCHOOL = "DEMO-SCH-01"
SCHOOL_EMAIL = "dpo1@school.example"
#: Generous: the daemon's jobs run every 5 s, but the machine may be busy.
PATIENCE_S = 120


@dataclass(frozen=True)
class Demo:
    var: Path
    web: str
    mail: str
    password: str
    log: Path


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """``retentiond demo run`` in a fresh folder, until the module's tests are done."""
    base = tmp_path_factory.mktemp("demo")
    var = base / "var"
    # Screenshots for the docs show the ports the README names; tests take free ones.
    web, mail, smtp = ((8080, 8081, 8025) if os.environ.get("RETENTIOND_SCREENSHOTS")
                       else (free_port(), free_port(), free_port()))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTIOND_")}
    env.update(HOME=str(base), PYTHONUNBUFFERED="1")
    log = base / "demo.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "retentiond.cli.main", "demo", "run", "--dir", str(var),
             "--web-port", str(web), "--mail-port", str(mail), "--smtp-port", str(smtp)],
            cwd=base, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: "is running in" in log.read_text() and _answers(web), 180,
                 lambda: f"the demo did not start:\n{log.read_text()}")
        yield Demo(var=var, web=f"http://127.0.0.1:{web}", mail=f"http://127.0.0.1:{mail}",
                   password=(var / "demo-password").read_text().strip(), log=log)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=90)
    assert code == 0, log.read_text()


def _answers(port: int) -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/login", timeout=5):
            return True
    except OSError:
        return False


def wait_for(check: Callable[[], Any], timeout: float, what: Callable[[], str]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(what())
        time.sleep(0.5)


def shot(page: Any, tmp_path: Path, name: str) -> None:
    page.screenshot(path=str(tmp_path / name), full_page=True)
    if out := os.environ.get("RETENTIOND_SCREENSHOTS"):
        page.screenshot(path=str(Path(out) / name), full_page=True)


def sign_in(page: Any, demo: Demo, username: str) -> None:
    page.goto(f"{demo.web}/login")
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(demo.password)
    page.get_by_label("Password").press("Enter")
    page.wait_for_load_state()


def held_rows(demo: Demo, upn: str) -> int:
    """Rows of a pupil still in the demo MIS (main table and children)."""
    with sqlite3.connect(f"file:{demo.var / 'demo' / 'holding' / 'mis.db'}?mode=ro",
                         uri=True) as db:
        return sum(int(db.execute(f"SELECT count(*) FROM {t} WHERE upn = ?", (upn,)).fetchone()[0])
                   for t in ("pupils", "pupil_marks", "pupil_attendance"))


def case_state(demo: Demo, record: str) -> str | None:
    """The state of the record's latest case, read from the registry."""
    with sqlite3.connect(f"file:{demo.var / 'retentiond.db'}?mode=ro", uri=True) as db:
        row = db.execute("SELECT d.state FROM disposals d JOIN records r ON r.id = d.record_id "
                         "WHERE r.record_key = ? ORDER BY d.id DESC LIMIT 1", (record,)).fetchone()
    return row[0] if row else None


def test_approve_execute_certify_notify_acknowledge(demo: Demo, tmp_path: Path) -> None:
    """Approving a school's pupil record in the UI leads, with nothing else done by hand, to
    its rows gone from the demo MIS, the case executed, a certificate on the certificates page,
    the notice with the certificate in the mail sink, and the school's acknowledgement from the
    notice's link recorded on the certificate."""
    with chromium() as browser:
        approver = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        sign_in(approver, demo, "approver1")
        approver.goto(f"{demo.web}/queue?controller={SCHOOL}&category=education.pupil_record"
                      "&sort=id&limit=10")
        first = approver.locator("tbody tr").first
        record = first.locator("a").first.inner_text().split("(")[0].strip()
        assert re.fullmatch(r"DEMO-R-\d{6}", record), record
        upn = "DEMO-UPN-" + record.rsplit("-", 1)[1]
        assert held_rows(demo, upn) == 8  # the pupil, four marks, three terms of attendance
        first.locator("input[type=checkbox]").check()
        approver.get_by_label("Reason").fill("Past its retention date; checked with the school")
        shot(approver, tmp_path, "demo-1-approve.png")
        approver.get_by_role("button", name="Approve selected cases").click()
        assert "Approval recorded for case" in approver.locator(
            ".govuk-notification-banner").inner_text()

        # The daemon carries it out: the case is executed, the MIS has no row left, and the
        # record page says so.
        wait_for(lambda: case_state(demo, record) == "executed", PATIENCE_S,
                 lambda: f"not executed:\n{demo.log.read_text()[-3000:]}")
        assert held_rows(demo, upn) == 0
        approver.goto(f"{demo.web}/records/{record}")
        assert "Executed" in approver.locator("h1").inner_text()
        history = approver.locator("table").last.inner_text()
        assert "Case approved" in history and "Disposal carried out and checked" in history
        shot(approver, tmp_path, "demo-2-executed.png")

        # The demo page asks the MIS's own connector whether the data is there.
        approver.goto(f"{demo.mail}/?record={record}")
        assert "its data is gone" in approver.locator("main").inner_text()

        # A certificate for the school, listed and shown.
        def certificate() -> str | None:
            approver.goto(f"{demo.web}/certificates")
            link = approver.get_by_role("link", name=re.compile(rf"^{SCHOOL}-\d+$"))
            return link.first.inner_text() if link.count() else None

        serial = wait_for(certificate, PATIENCE_S,
                          lambda: f"no certificate:\n{demo.log.read_text()[-3000:]}")
        approver.get_by_role("link", name=serial, exact=True).click()
        page_text = approver.locator("main").inner_text()
        assert SCHOOL in page_text or "Demo Primary School 1" in page_text
        shot(approver, tmp_path, "demo-3-certificate.png")

        # The notice reaches the school's inbox (the mail sink) with the certificate attached.
        def notice() -> bool:
            approver.goto(demo.mail)
            rows = approver.locator("tr", has_text=SCHOOL_EMAIL).filter(has_text=serial)
            return rows.count() == 1

        wait_for(notice, PATIENCE_S, lambda: f"no notice:\n{demo.log.read_text()[-3000:]}")
        shot(approver, tmp_path, "demo-4-mailbox.png")
        approver.locator("tr", has_text=SCHOOL_EMAIL).filter(has_text=serial).locator("a").click()
        body = approver.locator("pre").inner_text()
        assert f"Certificate:  {serial}" in body
        # Every link in the notice works: acknowledge, dispute and the published CA.
        for href in approver.locator("pre a").evaluate_all("els => els.map(e => e.href)"):
            assert approver.request.get(href).status == 200, href
        attached = approver.locator("main ul").inner_text()
        assert f"{serial}.pdf" in attached and f"{serial}.json" in attached
        shot(approver, tmp_path, "demo-5-notice.png")

        # The school's DPO follows the acknowledgement link from the mail.
        school = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        school.goto(approver.url)
        ack = school.locator("pre a").first
        assert "/acknowledge?token=" in (ack.get_attribute("href") or "")
        ack.click()
        assert serial in school.locator("main").inner_text()
        school.get_by_label("Your name").fill("Demo school DPO")
        shot(school, tmp_path, "demo-6-acknowledge.png")
        school.get_by_role("button", name="Send").click()
        assert "Acknowledgement recorded" in school.locator("h1").inner_text()

        # The school's user (and the council) see it on the certificate.
        signed_in = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        sign_in(signed_in, demo, "school")
        signed_in.goto(f"{demo.web}/certificates/{serial}")
        text = signed_in.locator("main").inner_text()
        assert "Acknowledged by Demo school DPO" in text
        shot(signed_in, tmp_path, "demo-7-acknowledged.png")
