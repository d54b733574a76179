"""The demo's set-up (retentiond/demo/site.py): every demo record's data is where its
connector looks, a second start brings nothing back, an old demo is set aside rather than
deleted; and its mail sink keeps and shows what the service sends."""

from __future__ import annotations

import socket
import sqlite3
import urllib.error
import urllib.request
from collections import Counter

import pytest
from sqlalchemy import select

from retentiond.config import load_config
from retentiond.connectors import ConnectorRef, load_connectors
from retentiond.demo.mailsink import DemoPages, serve_pages, start_smtp
from retentiond.demo.site import ACCOUNTS, Ports, prepare, record_lookup
from retentiond.notify.channels import Attachment, Outgoing, SmtpEmailChannel
from retentiond.notify.settings import SmtpSettings
from retentiond.registry.db import make_engine
from retentiond.registry.models import Record, WebUser


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def site(tmp_path, clock):
    """A prepared demo of 300 records."""
    return prepare(tmp_path / "var", clock=clock, records=300)


def records(site) -> list[tuple[str, str, str]]:
    engine = make_engine(load_config(str(site.config)).database_url)
    with engine.connect() as conn:
        rows = conn.execute(select(Record.record_key, Record.system, Record.locator)).all()
    engine.dispose()
    return [(str(k), str(s), str(loc)) for k, s, loc in rows]


def test_every_demo_record_is_held_where_its_connector_looks(site):
    """Each record on an electronic system is found by that system's own connector (so a
    first delete finds what it deletes); paper records are on the manual connector."""
    connectors = load_connectors(load_config(str(site.config)))
    by_system = Counter(system for _, system, _ in records(site))
    assert set(by_system) == {"mis", "referrals", "case-files", "paper-store"}, by_system
    missing = [key for key, system, locator in records(site) if system != "paper-store"
               and not connectors.for_system(system).exists(ConnectorRef(system, locator, key))]
    assert missing == []
    assert type(connectors.for_system("paper-store")).__name__ == "ManualConnector"


def test_a_second_start_brings_nothing_back(site, clock, tmp_path):
    """Data a disposal deleted stays deleted when the demo starts again, the registry keeps
    its records and accounts, and the config takes the new ports."""
    key, system, locator = next(r for r in records(site) if r[1] == "mis")
    connectors = load_connectors(load_config(str(site.config)))
    connectors.for_system(system).delete(ConnectorRef(system, locator, key), "test-delete")
    before = records(site)
    again = prepare(site.var, clock=clock, ports=Ports(web=18180, mail_page=18181, smtp=18125),
                    records=300)
    assert records(again) == before
    assert not connectors.for_system(system).exists(ConnectorRef(system, locator, key))
    assert 'listen = "127.0.0.1:18180"' in again.config.read_text()
    engine = make_engine(load_config(str(again.config)).database_url)
    with engine.connect() as conn:
        users = sorted(conn.execute(select(WebUser.username)).scalars())
    engine.dispose()
    assert users == sorted(ACCOUNTS)
    assert again.password == site.password
    assert record_lookup(again)(key).present is False  # type: ignore[union-attr]


def test_an_old_demo_is_set_aside_not_deleted(tmp_path, clock):
    """A ./var from before the demo had holding systems is moved aside whole, and a new demo
    is set up in its place."""
    var = tmp_path / "var"
    var.mkdir()
    (var / "retentiond.db").write_bytes(b"an old registry")
    site = prepare(var, clock=clock, records=50)
    old = [p for p in tmp_path.iterdir() if p.name.startswith("var.old-")]
    assert len(old) == 1 and (old[0] / "retentiond.db").read_bytes() == b"an old registry"
    assert any("older version" in n for n in site.notes)
    assert (var / "demo" / "holding" / "mis.db").is_file()


def test_the_mail_sink_keeps_and_shows_what_the_service_sends(tmp_path, clock):
    """A message sent through the service's own SMTP channel lands as an .eml file, is listed
    and shown with its links and attachments; names outside the mail folder are refused."""
    smtp_port, page_port = free_port(), free_port()
    mail = tmp_path / "mail"
    sink = start_smtp(mail, "127.0.0.1", smtp_port, clock=clock)
    pages = serve_pages(DemoPages(mail_dir=mail, counts=lambda: {"things": 3},
                                  lookup=lambda _r: None, service_url="http://service/"),
                        "127.0.0.1", page_port)
    try:
        channel = SmtpEmailChannel(SmtpSettings(host="127.0.0.1", port=smtp_port,
                                                security="none", username=None, password=None,
                                                ca_file=None, timeout_s=10),
                                   "retentiond@council.example")
        channel.send(Outgoing(
            notification_id=1, channel="email", target="dpo1@school.example",
            subject="Disposal certificate X-1",
            text="Please acknowledge: https://service.example/acknowledge?token=a.b&x=<1>\n",
            attachments=(Attachment(filename="X-1.pdf", mime="application/pdf",
                                    data=b"%PDF-1.7 demo"),),
            idempotency_key="n-1"))
        (eml,) = mail.glob("*.eml")
        assert b"Disposal certificate X-1" in eml.read_bytes()
        base = f"http://127.0.0.1:{page_port}"
        index = urllib.request.urlopen(base + "/").read().decode()
        assert "dpo1@school.example" in index and f"/mail/{eml.name}" in index
        shown = urllib.request.urlopen(f"{base}/mail/{eml.name}").read().decode()
        assert ('<a href="https://service.example/acknowledge?token=a.b&amp;x=">' in shown
                and "&lt;1&gt;" in shown)
        pdf = urllib.request.urlopen(f"{base}/mail/{eml.name}/0")
        assert pdf.read() == b"%PDF-1.7 demo"
        assert pdf.headers["Content-Disposition"] == 'attachment; filename="X-1.pdf"'
        for bad in ("/mail/..%2Fsecret.eml", "/mail/../../etc/passwd", f"/mail/{eml.name}/9",
                    "/mail/x.eml", f"/mail/{eml.name}/-1"):
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(base + bad)
            assert err.value.code == 404, bad
    finally:
        pages.shutdown()
        sink.stop()


def test_holding_data_is_synthetic(site):
    """The MIS holds year groups, marks and counts, and no column that could hold a name or
    a date of birth."""
    with sqlite3.connect(site.holding.mis_db) as db:
        columns = {row[1] for table in ("pupils", "pupil_marks", "pupil_attendance", "referrals")
                   for row in db.execute(f"PRAGMA table_info({table})")}
    assert not {c for c in columns if "name" in c or "birth" in c or "dob" in c}
    summary = (next(site.holding.case_files.glob("*/*")) / "summary.txt").read_text()
    assert "describes no real person" in summary
