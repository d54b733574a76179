"""Acknowledgement links (issue 11, item 10), on SQLite and PostgreSQL: a link expires
(``[notify] ack_link_days``, 90 by default) and then opens a clear page and records nothing;
disputes from one link, however often and however concurrently sent, add to the first
dispute instead of multiplying."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import hashlib
import hmac
import re
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from cert_support import make_keys, signer_for, standard_set
from fastapi.testclient import TestClient
from notify_support import SECRET, notify_settings
from sqlalchemy import select
from web_support import web_config

from retentiond.certificates.issue import issue_certificates
from retentiond.clock import FixedClock
from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.notify.ack import (
    MAX_DISPUTE_CHARS,
    TokenExpired,
    acknowledge,
    acknowledge_with_token,
    derive_key,
    make_token,
)
from retentiond.notify.messages import build_outgoing
from retentiond.registry.models import Acknowledgement, AuditEvent, Certificate, Notification
from retentiond.web.app import create_app

SERIAL = "SCH-01-000001"


@pytest.fixture
def issued(ctx: Context, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Context:
    standard_set(ctx, tmp_path)
    issue_certificates(ctx, signer_for(make_keys(tmp_path_factory.getbasetemp())), batch="run")
    return ctx


def _on(ctx: Context, day: dt.date) -> Context:
    return dataclasses.replace(ctx, clock=FixedClock(dt.datetime(day.year, day.month, day.day,
                                                                 12, tzinfo=dt.UTC)))


def _site(ctx: Context, database_url: str, tmp_path: Path, **notify: object) -> TestClient:
    (tmp_path / "notify-secret").write_bytes(SECRET)
    cfg = web_config(database_url, tmp_path)
    cfg.raw["notify"] = {"secret_file": str(tmp_path / "notify-secret"), **notify}
    return TestClient(create_app(cfg, policy=ctx.policy, clock=ctx.clock, sessions=ctx.sessions),
                      base_url="https://testserver")


def _acks(ctx: Context) -> list[Acknowledgement]:
    with ctx.sessions() as session:
        return list(session.scalars(select(Acknowledgement).order_by(Acknowledgement.id)))


def _events(ctx: Context) -> Counter[str]:
    with ctx.sessions() as session:
        return Counter(session.scalars(select(AuditEvent.kind).where(
            AuditEvent.kind.like("Certificate%"))))


def _legacy_token(serial: str) -> str:
    """A link as notices made them before links expired: the serial and its HMAC, no date."""
    mac = hmac.new(derive_key(SECRET, "ack"), b"ack:" + serial.encode(), hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).decode().rstrip("=")
    return f"{b64(serial.encode())}.{b64(mac[:24])}"


@pytest.fixture
def site(issued: Context, database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    with _site(issued, database_url, tmp_path, ack_link_days=30) as c:
        yield c


def test_an_expired_link_opens_a_clear_page_and_records_nothing(issued: Context,
                                                                 site: TestClient) -> None:
    """A link past its last day: the page says it has expired, when, and what to do (410);
    posting it records nothing. A link on its last day still works."""
    today = issued.clock.today()
    old = make_token(SECRET, SERIAL, expires_on=today - dt.timedelta(days=1))
    page = site.get("/acknowledge", params={"token": old})
    assert page.status_code == 410
    assert "This link has expired" in page.text and SERIAL in page.text
    yesterday = today - dt.timedelta(days=1)
    assert f"worked until {yesterday.day} {yesterday.strftime('%B %Y')}" in page.text
    r = site.post("/acknowledge", data={"token": old, "by": "A. Dpo", "kind": "disputed",
                                        "comment": "late"})
    assert r.status_code == 410 and _acks(issued) == []
    with pytest.raises(TokenExpired):
        acknowledge_with_token(issued, SECRET, old, by="A. Dpo")
    fresh = make_token(SECRET, SERIAL, expires_on=today)
    assert site.get("/acknowledge", params={"token": fresh}).status_code == 200
    r = site.post("/acknowledge", data={"token": fresh, "by": "A. Dpo", "kind": "acknowledged"})
    assert r.status_code == 200 and [a.kind for a in _acks(issued)] == ["acknowledged"]


def test_a_link_from_before_expiry_dates_expires_after_the_issue(issued: Context,
                                                                 database_url: str,
                                                                 tmp_path: Path) -> None:
    """A link without a date (sent before this change) works until ``ack_link_days`` after
    its certificate was issued, then never again."""
    token = _legacy_token(SERIAL)
    with issued.sessions() as session:
        issued_on = session.scalar(select(Certificate.issued_at)
                                   .where(Certificate.serial == SERIAL)).date()
    last = _on(issued, issued_on + dt.timedelta(days=90))
    with _site(last, database_url, tmp_path) as c:
        assert c.get("/acknowledge", params={"token": token}).status_code == 200
    after = _on(issued, issued_on + dt.timedelta(days=91))
    with _site(after, database_url, tmp_path) as c:
        assert c.get("/acknowledge", params={"token": token}).status_code == 410
        r = c.post("/acknowledge", data={"token": token, "by": "A. Dpo", "kind": "acknowledged"})
        assert r.status_code == 410
    with pytest.raises(TokenExpired):
        acknowledge_with_token(after, SECRET, token, by="A. Dpo")
    assert _acks(issued) == []


def test_the_notice_carries_links_for_ack_link_days(issued: Context) -> None:
    """The certificate email's links work for ``ack_link_days`` from when it was built, and
    the email says until when."""
    settings = notify_settings(None, ack_link_days=30)
    with issued.sessions() as session:
        n = session.scalar(select(Notification).where(Notification.kind == "certificate")
                           .order_by(Notification.id).limit(1))
        assert n is not None
        message = build_outgoing(session, n, settings, now=issued.clock.now())
    until = issued.clock.today() + dt.timedelta(days=30)
    assert f".{until.strftime('%Y%m%d')}." in message.text
    assert f"These links work until {until.day} {until.strftime('%B %Y')}" in message.text
    token = re.search(r"token=([A-Za-z0-9_\-.]+)\s", message.text)
    assert token is not None
    acknowledge_with_token(_on(issued, until), SECRET, token.group(1), by="A. Dpo",
                           link_days=30)
    with pytest.raises(TokenExpired):
        acknowledge_with_token(_on(issued, until + dt.timedelta(days=1)), SECRET,
                               token.group(1), by="B. Dpo", dispute=True, comment="x",
                               link_days=30)


def test_twenty_disputes_from_one_link_are_one_dispute(issued: Context, site: TestClient) -> None:
    """The same link used 20 times with different reasons: one dispute holding every reason
    in order, each addition audited; the same reason again adds nothing."""
    token = make_token(SECRET, SERIAL, expires_on=issued.clock.today())
    for i in range(20):
        r = site.post("/acknowledge", data={"token": token, "by": "A. Dpo", "kind": "disputed",
                                            "comment": f"record PUP-00{i} was not ours"})
        assert r.status_code == 200 and "Dispute recorded" in r.text
    site.post("/acknowledge", data={"token": token, "by": "A. Dpo", "kind": "disputed",
                                    "comment": "record PUP-0019 was not ours"})
    [dispute] = _acks(issued)
    assert dispute.kind == "disputed" and dispute.comment is not None
    positions = [dispute.comment.index(f"PUP-00{i} was") for i in range(20)]
    assert positions == sorted(positions)
    assert dispute.comment.count("[added ") == 19
    events = _events(issued)
    assert (events["CertificateDisputed"], events["CertificateDisputeAdded"]) == (1, 19)


def test_concurrent_disputes_are_one_dispute(issued: Context) -> None:
    """Ten disputes of one certificate at once, through the link and the API: one row."""
    token = make_token(SECRET, SERIAL, expires_on=issued.clock.today())
    barrier = threading.Barrier(10)
    errors: list[BaseException] = []

    def dispute(i: int) -> None:
        barrier.wait()
        try:
            if i % 2:
                acknowledge_with_token(issued, SECRET, token, by=f"P{i}", dispute=True,
                                       comment=f"reason {i}")
            else:
                acknowledge(issued, SERIAL, by=f"P{i}", kind="disputed", comment=f"reason {i}",
                            controller="SCH-01")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=dispute, args=(i,)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    [row] = _acks(issued)
    assert row.comment is not None
    assert all(f"reason {i}" in row.comment for i in range(10))
    events = _events(issued)
    assert (events["CertificateDisputed"], events["CertificateDisputeAdded"]) == (1, 9)


def test_a_dispute_cannot_grow_without_bound(issued: Context) -> None:
    """Additions stop at the limit with a clear refusal; what was recorded stays."""
    chunk = "x" * 4_000
    acknowledge(issued, SERIAL, by="A", kind="disputed", comment=f"first {chunk}")
    with pytest.raises(LifecycleError, match="already as long as it may be"):
        for i in range(MAX_DISPUTE_CHARS // 4_000 + 1):
            acknowledge(issued, SERIAL, by="A", kind="disputed", comment=f"{i} {chunk}")
    [row] = _acks(issued)
    assert row.comment is not None and len(row.comment) <= MAX_DISPUTE_CHARS
