"""What a controller reaches without an account: the published keys and the acknowledgement
link from a disposal notice."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cert_support import make_keys, signer_for, standard_set
from fastapi.testclient import TestClient
from sqlalchemy import select
from web_support import web_config

from retentiond.certificates.issue import issue_certificates
from retentiond.certificates.jws import verify_jws
from retentiond.lifecycle.context import Context
from retentiond.notify.ack import make_token
from retentiond.registry.models import Acknowledgement, AuditEvent, Certificate
from retentiond.web.app import create_app

SECRET = b"s" * 32
#: The last day the tests' links work (the tests' today is 2026-11-22).
LINK_UNTIL = dt.date(2027, 2, 20)


@pytest.fixture
def public(ctx: Context, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[TestClient, dict[str, str], Path]]:
    standard_set(ctx, tmp_path)
    keys = make_keys(tmp_path_factory.getbasetemp())
    certs = issue_certificates(ctx, signer_for(keys), batch="run")
    (tmp_path / "notify-secret").write_bytes(SECRET)
    cfg = web_config(str(ctx.sessions.kw["bind"].url.render_as_string(hide_password=False)),
                     tmp_path)
    cfg.raw.update({
        "certificates": {"issuer": "Synthetic Borough Council", "key_dir": str(keys)},
        "notify": {"secret_file": str(tmp_path / "notify-secret"), "from": "ig@la01.example"},
    })
    app = create_app(cfg, policy=ctx.policy, clock=ctx.clock, sessions=ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c, {cert.controller: cert.serial for cert in certs}, keys


def _json_of(ctx: Context, serial: str) -> str:
    with ctx.sessions() as session:
        cert = session.scalar(select(Certificate).where(Certificate.serial == serial))
        assert cert is not None
        return str(cert.jws)


def test_published_keys_check_a_certificate(public, ctx):
    """Anyone can fetch the key set and CA certificate, and they check a real certificate."""
    c, serials, _ = public
    jwks = c.get("/keys/jwks.json")
    ca = c.get("/keys/ca.pem")
    assert jwks.status_code == 200 and ca.status_code == 200
    assert all("d" not in k for k in jwks.json()["keys"])  # never the private half
    assert ca.content.startswith(b"-----BEGIN CERTIFICATE-----")
    signed = _json_of(ctx, serials["SCH-01"])
    verify_jws(signed, jwks=jwks.json())
    verify_jws(signed, ca_pem=ca.content)


def test_opening_the_link_changes_nothing(public, ctx):
    """A GET of the link (as a mail scanner does) shows a form and records nothing."""
    c, serials, _ = public
    r = c.get("/acknowledge", params={"token": make_token(SECRET, serials["SCH-01"], expires_on=LINK_UNTIL)})
    assert r.status_code == 200 and serials["SCH-01"] in r.text and "Your name" in r.text
    with ctx.sessions() as session:
        assert session.scalars(select(Acknowledgement)).all() == []


@pytest.mark.parametrize("kind,comment", [("acknowledged", ""),
                                          ("disputed", "Record SCH-01-R-3 was not ours")])
def test_confirming_the_link_records_it(public, ctx, kind, comment):
    """Posting the form records an acknowledgement or dispute, with the name given, audited."""
    c, serials, _ = public
    token = make_token(SECRET, serials["SCH-01"], expires_on=LINK_UNTIL)
    r = c.post("/acknowledge", data={"token": token, "by": "A. Dpo", "kind": kind,
                                     "comment": comment})
    assert r.status_code == 200
    assert ("Dispute recorded" if kind == "disputed" else "Acknowledgement recorded") in r.text
    with ctx.sessions() as session:
        acks = session.scalars(select(Acknowledgement)).all()
        kinds = [e.kind for e in session.scalars(select(AuditEvent))]
    assert [(a.kind, a.by, a.via) for a in acks] == [(kind, "A. Dpo", "link")]
    expected = "CertificateAcknowledged" if kind == "acknowledged" else "CertificateDisputed"
    assert kinds.count(expected) == 1


@pytest.mark.parametrize("token", ["", "not-a-token", "U0NILTAx.AAAA"])
def test_a_bad_link_is_refused_and_records_nothing(public, ctx, token):
    """A missing, damaged or forged token gets a plain page and changes nothing."""
    c, _, _ = public
    assert c.get("/acknowledge", params={"token": token}).status_code == 400
    r = c.post("/acknowledge", data={"token": token, "by": "Mallory", "kind": "acknowledged"})
    assert r.status_code == 400 and "does not work" in r.text
    with ctx.sessions() as session:
        assert session.scalars(select(Acknowledgement)).all() == []


def test_a_dispute_needs_a_name_and_a_reason(public, ctx):
    """The form says what is missing, and records nothing until it is given."""
    c, serials, _ = public
    token = make_token(SECRET, serials["SCH-01"], expires_on=LINK_UNTIL)
    r = c.post("/acknowledge", data={"token": token, "by": "", "kind": "disputed",
                                     "comment": ""})
    assert r.status_code == 400
    assert "Enter your name" in r.text and "Say what is wrong" in r.text
    with ctx.sessions() as session:
        assert session.scalars(select(Acknowledgement)).all() == []


def test_keys_answer_404_before_keys_init(ctx, tmp_path):
    """Without keys the routes say so plainly instead of failing."""
    cfg = web_config(str(ctx.sessions.kw["bind"].url.render_as_string(hide_password=False)),
                     tmp_path)
    cfg.raw["certificates"] = {"key_dir": str(tmp_path / "no-keys")}
    app = create_app(cfg, policy=ctx.policy, clock=ctx.clock, sessions=ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        assert c.get("/keys/jwks.json").status_code == 404
        assert c.get("/keys/ca.pem").status_code == 404
