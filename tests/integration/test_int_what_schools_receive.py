"""What a school receives, end to end with real holding systems (a SQL database on the
registry's backend, a real folder), a real SMTP server and a real webhook receiver:

- nothing in it lets a reader work out personal data: realistic synthetic children (Faker
  en_GB names, dates of birth, the 25th birthday that a pupil record's due date is) appear in
  no certificate (JSON, PDF text), no email, no webhook body and no package listing;
- a terminated agreement tells the school at once what comes back, how and by when (clause
  13.1), and each return names its packages, their SHA-256, where to collect them and how the
  password is agreed, as a return, never as "disposed of".
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import pyzipper
from cert_support import make_keys, signer_for
from execution_support import PASSWORD, connector_config, holding_database
from faker import Faker
from notify_support import HttpReceiver, SmtpReceiver, attachments, notify_settings
from sqlalchemy import create_engine, select, text, update

from retentiond.certificates import issue_certificates
from retentiond.connectors import load_connectors
from retentiond.lifecycle.agreements import add_agreement, terminate_agreement
from retentiond.lifecycle.evaluate import evaluate
from retentiond.lifecycle.execute import execute_due
from retentiond.lifecycle.review import approve, list_disposals
from retentiond.notify import deliver_notifications
from retentiond.notify.ack import webhook_secret
from retentiond.notify.channels import build_channels
from retentiond.notify.termination import termination_notices
from retentiond.policy.dates import add_period
from retentiond.policy.engine import TERMINATION_CITATION, TERMINATION_RULE_ID
from retentiond.policy.model import Period
from retentiond.registry import models as m

TODAY = dt.date(2026, 11, 22)
ISSUER = "Synthetic Borough Council"
TERMINATED_ON = dt.date(2026, 9, 1)   # one month's notice: everything back by 1 October 2026
COLLECT = "from your school's folder on the council's secure file transfer site"
PASSWORD_HOW = "we agree it with your data protection officer by telephone"


@pytest.fixture
def holding_url(database_url, tmp_path):
    """A holding database beside the registry, on the same backend."""
    yield from holding_database(database_url, tmp_path)


def _children(seed: int) -> list[dict]:
    """Six synthetic children. Three were born long enough ago that their pupil record is due
    on its 25th birthday (deleted); three are younger: the termination makes theirs due
    (returned). No 25th birthday falls near TODAY or the termination."""
    fake = Faker("en_GB")
    fake.seed_instance(seed)
    out: list[dict] = []
    while len(out) < 6:
        old = len(out) < 3
        born = fake.date_between(dt.date(1996, 1, 1), dt.date(2001, 6, 30)) if old else \
            fake.date_between(dt.date(2003, 1, 1), dt.date(2008, 12, 31))
        birthday = add_period(born, Period(years=25))
        if abs((birthday - TODAY).days) < 60 or abs((birthday - TERMINATED_ON).days) < 60:
            continue
        first, last = fake.first_name(), fake.last_name()
        n = len(out) + 1
        out.append({
            "first": first, "last": last, "dob": born, "birthday": birthday,
            "subject": f"S-{fake.bothify('??######').upper()}",
            "upn": fake.bothify("A###########").upper(),
            "folder": f"2022-{n:05d}-{first}-{last}".lower(),
            "record": f"PUP-2026-{n:04d}", "files": n in (3, 6),
            "returned": not old,
        })
    return out


def _forbidden(children: list[dict]) -> list[str]:
    """Everything about the children that must not reach a school's reader: names, subject
    references, locators, and dates of birth and 25th birthdays in every usual form."""
    out: list[str] = []
    for c in children:
        out += [c["first"], c["last"], f"{c['first']} {c['last']}", c["subject"], c["upn"],
                c["folder"]]
        for day in (c["dob"], c["birthday"]):
            out += [day.isoformat(), day.strftime("%d/%m/%Y"), day.strftime("%Y%m%d"),
                    f"{day.day} {day.strftime('%B %Y')}", f"{day.day} {day.strftime('%b %Y')}",
                    day.strftime("%d %b %Y")]
    return out


def _leaks(where: str, text_: str, forbidden: list[str]) -> list[str]:
    return [f"{where}: {f!r}" for f in forbidden
            if re.search(rf"(?<![A-Za-z0-9]){re.escape(f)}(?![A-Za-z0-9])", text_)]


def _setup(ctx, tmp_path: Path, holding_url: str, children: list[dict]):
    # the holding systems: a pupils table, and a folder per child's case files
    engine = create_engine(holding_url)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE pupils (upn VARCHAR(20) PRIMARY KEY, "
                          "given_name VARCHAR(50), family_name VARCHAR(50), born DATE)"))
        for c in children:
            if not c["files"]:
                conn.execute(text("INSERT INTO pupils VALUES (:u, :f, :l, :b)"),
                             {"u": c["upn"], "f": c["first"], "l": c["last"], "b": c["dob"]})
    engine.dispose()
    files = tmp_path / "files"
    for c in children:
        if c["files"]:
            folder = files / c["folder"]
            folder.mkdir(parents=True)
            (folder / f"{c['first']} {c['last']} referral.pdf").write_bytes(b"%PDF-1.4 synthetic")
            (folder / f"{c['last']}-{c['dob'].isoformat()}.txt").write_text(
                f"{c['first']} {c['last']}, born {c['dob']}\n")
    # the registry: two schools, an agreement, the records
    (tmp_path / "c.csv").write_text(
        "code,name,email\nSCH-01,Synthetic School One,dpo@sch01.example\n"
        "SCH-02,Synthetic School Two,dpo@sch02.example\n")
    from retentiond.ingest.controllers import import_controllers
    from retentiond.ingest.records import import_records

    import_controllers(ctx, tmp_path / "c.csv")
    add_agreement(ctx, code="ISA-01", title="Synthetic pupil data sharing agreement",
                  notice="1m", action="return")
    lines = ["record_id,category,controller,system,locator,subject_ref,date_of_birth,agreement"]
    for c in children:
        lines.append(",".join([
            c["record"], "education.pupil_record", "SCH-01" if c["returned"] else "SCH-02",
            "files" if c["files"] else "mis", c["folder"] if c["files"] else c["upn"],
            c["subject"], c["dob"].isoformat(), "ISA-01" if c["returned"] else ""]))
    (tmp_path / "r.csv").write_text("\n".join(lines) + "\n")
    import_records(ctx, tmp_path / "r.csv")
    cfg = connector_config(tmp_path, holding_url, files, tmp_path / "drop", tmp_path / "passwords")
    cfg.raw["connectors"]["mis"]["children"] = []
    return cfg


@pytest.mark.parametrize("seed", [2024, 7])
def test_a_school_receives_nothing_that_gives_a_child_away(ctx, tmp_path, holding_url, seed):
    """Certificates (JSON and PDF text), the termination notice and certificate emails, the
    webhook bodies and the return packages' listings hold no name, subject reference, locator,
    date of birth or 25th birthday of any child."""
    children = _children(seed)
    cfg = _setup(ctx, tmp_path, holding_url, children)
    keys = make_keys(tmp_path.parent / "keys-what-schools-receive")
    smtp = SmtpReceiver().start()
    settings = notify_settings(smtp.settings(), return_collection=COLLECT,
                               return_password_method=PASSWORD_HOW, return_format="auto")
    hook_key = webhook_secret(settings.secret, "SCH-01").encode()
    try:
        with HttpReceiver(hook_key) as hook:
            with ctx.sessions.begin() as session:
                session.execute(update(m.Controller).where(m.Controller.code == "SCH-01")
                                .values(webhook_url=hook.url))
            terminate_agreement(ctx, "ISA-01", on=TERMINATED_ON, notice="1m",
                                notices=termination_notices(ctx, issuer=ISSUER))
            evaluate(ctx, TODAY)
            approve(ctx, [c.id for c in list_disposals(ctx)], reason="checked")
            registry = load_connectors(cfg)
            try:
                result = execute_due(ctx, registry, owner="w", batch_size=20, lease_s=60)
            finally:
                registry.close()
            assert result.executed == 6, result
            issued = issue_certificates(ctx, signer_for(keys), batch="run")
            assert sorted(c.controller for c in issued) == ["SCH-01", "SCH-02"]
            delivered = deliver_notifications(ctx, build_channels(settings))
            # the termination notice and SCH-01's certificate by email and webhook, SCH-02's
            # certificate by email
            assert delivered.dead == 0 and delivered.delivered == 5
    finally:
        smtp.stop()

    forbidden = _forbidden(children)
    leaks: list[str] = []
    with ctx.sessions() as session:
        certs = list(session.scalars(select(m.Certificate)))
    for cert in certs:
        leaks += _leaks(f"{cert.serial} document", json.dumps(cert.document), forbidden)
        leaks += _leaks(f"{cert.serial} signed JSON", _decoded_parts(cert.jws), forbidden)
        leaks += _leaks(f"{cert.serial} PDF", _pdf_text(cert.pdf, tmp_path), forbidden)
    for msg in smtp.received.all:
        body = msg.get_body(("plain",)).get_content()
        leaks += _leaks(f"email {msg['Subject']}", f"{msg['Subject']}\n{body}", forbidden)
        for name, data in attachments(msg).items():
            leaks += _leaks(f"attachment {name}", name, forbidden)
            if name.endswith(".json"):
                leaks += _leaks(f"attachment {name}", _decoded_parts(data.decode()), forbidden)
    for headers, body in hook.raw:
        doc = json.loads(body)
        signed = _decoded_parts(json.dumps(doc["certificate"])) if "certificate" in doc else ""
        leaks += _leaks("webhook body", body.decode() + signed, forbidden)
        leaks += _leaks("webhook headers", json.dumps(headers), forbidden)
    packages = sorted((tmp_path / "drop").rglob("retentiond-*"))
    assert {p.suffix for p in packages} >= {".zip", ".xlsx"}
    for package in packages:
        leaks += _leaks(f"package name {package.name}", package.name, forbidden)
        if package.suffix == ".zip":
            with pyzipper.AESZipFile(package) as zf:
                listing = "\n".join(i.filename + (i.comment or b"").decode() for i in zf.infolist())
            leaks += _leaks(f"{package.name} listing", listing, forbidden)
        # What anyone holding the file, without the password, can read in it.
        leaks += _leaks(f"{package.name} bytes", package.read_bytes().decode("latin-1"), forbidden)
    assert leaks == []
    # The packages do hold the children's data, for the school with the password.
    zipped = next(p for p in packages if p.suffix == ".zip")
    with pyzipper.AESZipFile(zipped) as zf:
        zf.setpassword(PASSWORD.encode())
        manifest = json.loads(zf.read("manifest.json"))
        names = [f["name"] for f in manifest["files"]]
    assert any(c["folder"] in n for c in children for n in names)


def _decoded_parts(signed: str) -> str:
    """The signed JSON's parts, payloads decoded: what a JOSE library shows."""
    import base64

    doc = json.loads(signed)
    return "\n".join(base64.urlsafe_b64decode(p["payload"] + "==").decode()
                     for p in doc.get("parts", [doc]))


def _pdf_text(pdf: bytes, tmp: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp / "cert.pdf"
    path.write_bytes(pdf)
    return subprocess.run(["pdftotext", "-layout", str(path), "-"], capture_output=True,
                          text=True, check=True).stdout


def test_the_returning_school_is_told_what_comes_back_how_and_when(ctx, tmp_path, holding_url):
    """On termination, at once: what will come back (counts by category), how (format, where,
    the password), by when, citing clause 13.1. With the return: a certificate of return
    naming clause 13.1 and the termination date, each package and its SHA-256, where to
    collect it and how the password is agreed; never "disposed of"."""
    children = _children(99)
    cfg = _setup(ctx, tmp_path, holding_url, children)
    smtp = SmtpReceiver().start()
    settings = notify_settings(smtp.settings(), return_collection=COLLECT,
                               return_password_method=PASSWORD_HOW, return_format="auto")
    channels = build_channels(settings)
    try:
        terminate_agreement(ctx, "ISA-01", on=TERMINATED_ON, notice="1m",
                            notices=termination_notices(ctx, issuer=ISSUER))
        with ctx.sessions() as session:
            [row] = session.scalars(select(m.Notification)).all()
        assert (row.kind, row.target) == ("termination_notice", "dpo@sch01.example")
        assert deliver_notifications(ctx, channels).delivered == 1
        [notice] = smtp.received.all
        body = notice.get_body(("plain",)).get_content()
        flat = " ".join(body.split())
        assert notice["Subject"] == ("Agreement ISA-01 terminated: what comes back to Synthetic "
                                     "School One by 1 October 2026")
        assert "terminated on 1 September 2026. Under clause 13.1" in flat
        assert "What will come back to you: 3 record(s)" in flat
        assert "3 Pupil educational record" in flat
        assert "password-protected Excel workbook" in flat and "ZIP" in flat
        assert f"Where: {COLLECT}." in flat and f"Password: {PASSWORD_HOW}." in flat
        assert "By when: 1 October 2026." in flat
        for c in children:
            assert c["record"] not in body  # counts only

        evaluate(ctx, TODAY)
        approve(ctx, [c.id for c in list_disposals(ctx)], reason="checked")
        registry = load_connectors(cfg)
        try:
            assert execute_due(ctx, registry, owner="w", batch_size=20, lease_s=60).executed == 6
        finally:
            registry.close()
        keys = make_keys(tmp_path.parent / "keys-what-schools-receive")
        issue_certificates(ctx, signer_for(keys), batch="run")
        assert deliver_notifications(ctx, channels).delivered == 2
    finally:
        smtp.stop()

    with ctx.sessions() as session:
        cert = session.scalar(select(m.Certificate).join(m.Controller).where(
            m.Controller.code == "SCH-01"))
    doc = cert.document
    assert doc["agreements"] == [{"code": "ISA-01", "title": "Synthetic pupil data sharing "
                                  "agreement", "terminated_on": "2026-09-01", "clause": "13.1"}]
    assert {r["rule"]["id"] for r in doc["records"]} == {TERMINATION_RULE_ID}
    assert {r["rule"]["citation"] for r in doc["records"]} == {TERMINATION_CITATION}
    assert TERMINATION_CITATION.startswith("Information Sharing Agreement (seed template), "
                                           "clause 13.1")
    assert {r["action"] for r in doc["records"]} == {"returned"}

    mail = next(x for x in smtp.received.all if x["To"] == "dpo@sch01.example"
                and x["Subject"].startswith("Certificate"))
    body = mail.get_body(("plain",)).get_content()
    flat = " ".join(body.split())
    assert mail["Subject"] == (f"Certificate of return {cert.serial}: 3 records of Synthetic "
                               "School One (3 returned to you)")
    assert "disposed of" not in mail["Subject"] + body
    assert "terminated on 1 September 2026; under clause 13.1" in flat
    packages = [p for p in sorted((tmp_path / "drop" / "SCH-01").iterdir())
                if p.suffix in (".zip", ".xlsx")]
    assert len(packages) == 3
    for package in packages:
        digest = hashlib.sha256(package.read_bytes()).hexdigest()
        assert package.name in body and digest in body
    assert f"Where: {COLLECT}." in flat and f"Password: {PASSWORD_HOW}." in flat
    text_ = _pdf_text(cert.pdf, tmp_path)
    page = " ".join(text_.split())
    assert "Certificate of return" in page and "disposed of" not in page.split("Annex A")[0]
    assert "ended on 1 September 2026" in page and "clause 13.1" in page
    assert "Information Sharing Agreement (seed template), clause 13.1" in " ".join(page.split())
