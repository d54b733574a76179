"""Certificates against real SQLite and PostgreSQL: issuing moves disposals and queues
notices in one transaction, the chain, signatures checked both ways, tampering caught."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from cert_support import ISSUER, make_keys, on, signer_for, standard_set
from conftest import TODAY
from int_support import audit_counts, pupil, states
from sqlalchemy import func, select

from retentiond.certificates import issue_certificates
from retentiond.certificates.keys import publish
from retentiond.certificates.verify import load_jwks, verify_bytes
from retentiond.registry import models as m


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One key directory for the module (RSA keys are slow to make)."""
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def public(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """What a controller holds: the published key set and CA certificate."""
    from cert_support import settings_for

    out = tmp_path_factory.mktemp("public")
    publish(settings_for(keys), out)
    return {"jwks": (out / "jwks.json").read_bytes(), "ca": (out / "ca.pem").read_bytes()}


def _certs(ctx) -> list[m.Certificate]:
    with ctx.sessions() as session:
        return list(session.scalars(select(m.Certificate).order_by(m.Certificate.id)))


def test_issue_certifies_and_queues_in_one_go(ctx, tmp_path, keys):
    """One certificate per controller; disposals certified; one outbox row per channel."""
    ids = standard_set(ctx, tmp_path)
    issued = issue_certificates(ctx, signer_for(keys), batch="run")
    assert sorted((c.controller, c.records) for c in issued) == [("LA-01", 2), ("SCH-01", 3)]
    assert {s[-1] for s in states(ctx).values()} == {"certified"}
    with ctx.sessions() as session:
        items = session.scalar(select(func.count()).select_from(m.CertificateItem))
        notes = session.execute(select(m.Notification.kind, m.Notification.channel,
                                       m.Notification.state)).all()
    assert items == len(ids) == 5
    assert sorted(notes) == [("certificate", "email", "pending")] * 2
    counts = audit_counts(ctx)
    assert counts["CertificateIssued"] == 2 and counts["DisposalCertified"] == 5
    # Twice is once: nothing left to certify.
    assert issue_certificates(ctx, signer_for(keys), batch="run") == []


def test_document_states_what_the_issue_lists(ctx, tmp_path, keys):
    """Serial, issuer, controller, per-record facts, totals, chain and audit head."""
    standard_set(ctx, tmp_path)
    issue_certificates(ctx, signer_for(keys), batch="run")
    doc = next(c.document for c in _certs(ctx) if c.document["controller"]["code"] == "SCH-01")
    assert doc["serial"] == "SCH-01-000001" and doc["sequence"] == 1
    assert doc["issuer"]["name"] == ISSUER
    assert doc["previous"] is None
    head = doc["audit_head"]
    assert head["seq"] > 0 and len(head["sha256"]) == 64
    from retentiond.audit import verify

    with ctx.sessions() as session:  # the trail still passes through the quoted head
        assert verify(session, anchors={head["seq"]: head["sha256"]}).ok
    by_ref = {r["record"]: r for r in doc["records"]}
    assert set(by_ref) == {"PUP-001", "PUP-002", "PUP-003"}
    assert by_ref["PUP-001"]["action"] == "deleted"
    assert by_ref["PUP-001"]["rule"]["id"] == "isa.education.pupil_record"
    assert by_ref["PUP-001"]["rule"]["citation"]
    assert by_ref["PUP-001"]["systems"] == ["mis"]
    assert by_ref["PUP-001"]["approved_by"] == ["officer.one"]
    assert by_ref["PUP-002"]["action"] == "returned"
    assert by_ref["PUP-002"]["package_sha256"] == "ab" * 32
    assert by_ref["PUP-003"]["action"] == "manual"
    assert by_ref["PUP-003"]["evidence"]["certificate_no"] == "SH-0001"
    assert doc["totals"] == {"records": 3, "by_action": {"deleted": 1, "manual": 1, "returned": 1},
                             "by_category": {"education.pupil_record": 3}}
    text = json.dumps(doc)
    for personal in ("S-PUP-001", "1999-03-04", "date_of_birth"):
        assert personal not in text


def test_termination_disposal_is_certified_with_its_citation(ctx, tmp_path, keys):
    """A record disposed of because its agreement was terminated names the agreement's
    termination clause on its certificate, as every other disposal names its rule."""
    import datetime as dt

    from cert_support import executed
    from int_support import seed_controllers

    from retentiond.lifecycle.agreements import add_agreement, terminate_agreement
    from retentiond.policy.engine import TERMINATION_CITATION, TERMINATION_RULE_ID, TERMINATION_TITLE

    seed_controllers(ctx, tmp_path)
    add_agreement(ctx, code="ISA-T", title="Synthetic ISA", notice="1m", action="delete")
    # Due on the 25th birthday in 2035 by rule; the termination makes it due a month ago.
    rows = [pupil("PUP-T01", "2010-01-01", system="mis", agreement="ISA-T")]
    terminate_agreement(ctx, "ISA-T", on=TODAY - dt.timedelta(days=62))
    executed(ctx, tmp_path, rows)
    issue_certificates(ctx, signer_for(keys), batch="run")
    (cert,) = _certs(ctx)
    (item,) = cert.document["records"]
    assert item["rule"] == {"id": TERMINATION_RULE_ID, "citation": TERMINATION_CITATION,
                            "title": TERMINATION_TITLE}
    assert "clause 13.1" in item["rule"]["citation"]


def test_chain_links_each_certificate_to_the_one_before(ctx, tmp_path, keys, public):
    """A second certificate names the first's hash; verify --previous checks the link."""
    standard_set(ctx, tmp_path)
    signer = signer_for(keys)
    issue_certificates(ctx, signer, batch="run")
    from cert_support import executed

    later = on(ctx, TODAY, hour=15)
    executed(later, tmp_path, [pupil("PUP-010", "1997-02-03", system="mis")])
    [second] = issue_certificates(later, signer, batch="run")
    assert second.serial == "SCH-01-000002"
    first_row, second_row = [c for c in _certs(ctx) if c.document["controller"]["code"] == "SCH-01"]
    assert second_row.previous_sha256 == first_row.sha256
    report = verify_bytes(second_row.jws.encode(), jwks=load_jwks(public["jwks"], "jwks"),
                          previous=first_row.jws.encode())
    assert report.ok, report.message
    report = verify_bytes(second_row.pdf, ca_pem=public["ca"], previous=first_row.pdf)
    assert report.ok, report.message


def test_daily_batch_issues_once_a_day(ctx, tmp_path, keys):
    """In daily mode a second call the same day issues nothing; the next day it does."""
    standard_set(ctx, tmp_path)
    signer = signer_for(keys)
    assert len(issue_certificates(ctx, signer, batch="daily")) == 2
    from cert_support import executed

    later = on(ctx, TODAY, hour=18)
    executed(later, tmp_path, [pupil("PUP-011", "1997-02-03")])
    assert issue_certificates(later, signer, batch="daily") == []
    import datetime as dt

    tomorrow = on(ctx, TODAY + dt.timedelta(days=1))
    [c] = issue_certificates(tomorrow, signer, batch="daily")
    assert (c.controller, c.records, c.batch) == ("SCH-01", 1, f"daily-{TODAY + dt.timedelta(days=1)}")


def test_a_large_batch_is_split_into_chained_certificates(ctx, tmp_path, keys):
    """More executed disposals than max_records: several certificates in the chain."""
    standard_set(ctx, tmp_path)
    issued = issue_certificates(ctx, signer_for(keys), batch="daily", max_records=2)
    sch = [c for c in issued if c.controller == "SCH-01"]
    assert [(c.serial, c.records, c.batch) for c in sch] == [
        ("SCH-01-000001", 2, f"daily-{TODAY}"), ("SCH-01-000002", 1, f"daily-{TODAY}#2")]
    assert {s[-1] for s in states(ctx).values()} == {"certified"}
    assert issue_certificates(ctx, signer_for(keys), batch="daily", max_records=2) == []


def test_a_failed_issue_changes_nothing(ctx, tmp_path, keys, monkeypatch):
    """If signing fails, no certificate, no state change, no outbox row, no audit event."""
    from int_support import snapshot

    standard_set(ctx, tmp_path)
    before = snapshot(ctx)
    import retentiond.certificates.issue as issue_mod

    def broken(*a, **k):
        raise RuntimeError("signing device unplugged")

    monkeypatch.setattr(issue_mod, "sign_pdf", broken)
    with pytest.raises(RuntimeError):
        issue_certificates(ctx, signer_for(keys), batch="run")
    assert snapshot(ctx) == before


# --- verification, both ways, and tampering -------------------------------------------------
# These check files, not the database: one chain of three SCH-01 certificates, issued once on
# SQLite for the whole module.

@pytest.fixture(scope="module")
def chain(sqlite_template, keys, policy_module, tmp_path_factory) -> list[m.Certificate]:
    """Three SCH-01 certificates issued one after another (numbers 1, 2, 3)."""
    import datetime as dt

    from cert_support import executed
    from conftest import FixedClock

    from retentiond.lifecycle.context import Context
    from retentiond.registry.db import make_engine, session_factory

    tmp = tmp_path_factory.mktemp("chain")
    shutil.copy(sqlite_template, tmp / "registry.db")
    engine = make_engine(f"sqlite:///{tmp / 'registry.db'}")
    ctx = Context(sessions=session_factory(engine), policy=policy_module, actor="officer.one",
                  clock=FixedClock(dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)))
    standard_set(ctx, tmp)
    signer = signer_for(keys)
    issue_certificates(ctx, signer, batch="run")
    for hour, key in ((14, "PUP-020"), (16, "PUP-021")):
        later = on(ctx, TODAY, hour=hour)
        executed(later, tmp, [pupil(key, "1996-01-01")])
        issue_certificates(later, signer, batch="run")
    certs = [c for c in _certs(ctx) if c.document["controller"]["code"] == "SCH-01"]
    engine.dispose()
    return certs


@pytest.fixture(scope="module")
def policy_module():
    """The default policy pack, for module-scoped fixtures."""
    from conftest import DEFAULT_PACK

    from retentiond.policy import load_policy_set

    return load_policy_set([DEFAULT_PACK])


@pytest.fixture
def issued(chain) -> m.Certificate:
    """The first SCH-01 certificate (three records: deleted, returned, manual)."""
    return chain[0]


def _file(cert: m.Certificate) -> dict:
    """The signed certificate file: its numbered parts, each a flattened JWS."""
    return json.loads(cert.jws)


def _payload(flat: dict[str, str]) -> dict:
    return json.loads(base64.urlsafe_b64decode(flat["payload"] + "=="))


def _encode(doc: dict) -> str:
    from retentiond.certificates.document import canonical

    return base64.urlsafe_b64encode(canonical(doc)).decode().rstrip("=")


def test_sign_and_verify_both_ways(issued, public):
    """JSON and PDF verify with the key set and with the CA certificate alone."""
    jwks = load_jwks(public["jwks"], "jwks")
    for data in (issued.jws.encode(), issued.pdf):
        for kw in ({"jwks": jwks}, {"ca_pem": public["ca"]}):
            report = verify_bytes(data, **kw)
            assert report.ok, (kw.keys(), report.message)
            assert report.serial == issued.serial and report.sha256 == issued.sha256


def test_changed_byte_in_json_is_altered(issued, public):
    """A byte changed in the signed payload: altered."""
    signed = _file(issued)
    flat = signed["parts"][0]
    p = flat["payload"]
    i = len(p) // 2
    flat["payload"] = p[:i] + ("A" if p[i] != "A" else "B") + p[i + 1:]
    report = verify_bytes(json.dumps(signed).encode(), ca_pem=public["ca"])
    assert (report.ok, report.kind) == (False, "altered"), report.message


def test_swapped_records_are_altered(issued, public):
    """Two records swapped (same content, other order) no longer match the signature."""
    signed = _file(issued)
    flat = signed["parts"][0]
    doc = _payload(flat)
    doc["records"][0], doc["records"][1] = doc["records"][1], doc["records"][0]
    flat["payload"] = _encode(doc)
    report = verify_bytes(json.dumps(signed).encode(), jwks=load_jwks(public["jwks"], "j"))
    assert (report.ok, report.kind) == (False, "altered")
    assert "changed after it was signed" in report.message


def test_changed_byte_in_pdf_is_altered(issued, public):
    """A byte changed inside the signed range of the PDF: altered."""
    data = bytearray(issued.pdf)
    i = data.index(b"stream", 2000) + 40  # inside a (compressed) content stream
    data[i] ^= 0x01
    report = verify_bytes(bytes(data), ca_pem=public["ca"])
    assert (report.ok, report.kind) == (False, "altered"), report.message


def test_other_key_is_wrong_key(issued, tmp_path_factory):
    """Checked with another issuer's key set or CA: wrong key, not 'altered'."""
    from cert_support import settings_for

    other = make_keys(tmp_path_factory.mktemp("other"), issuer="Some Other Council")
    out = tmp_path_factory.mktemp("other-public")
    publish(settings_for(other, issuer="Some Other Council"), out)
    for data in (issued.jws.encode(), issued.pdf):
        report = verify_bytes(data, jwks=load_jwks((out / "jwks.json").read_bytes(), "j"))
        assert (report.ok, report.kind) == (False, "wrong_key"), report.message
        report = verify_bytes(data, ca_pem=(out / "ca.pem").read_bytes())
        assert (report.ok, report.kind) == (False, "wrong_key"), report.message


def test_removed_certificate_breaks_the_chain(chain, public):
    """Given certificate 1 as the previous of certificate 3, verify reports a broken chain
    and how many are missing; 2 then 3 verifies."""
    one, two, three = chain
    report = verify_bytes(three.jws.encode(), ca_pem=public["ca"], previous=one.jws.encode())
    assert (report.ok, report.kind) == (False, "broken_chain")
    assert "1 certificate(s) between them are missing" in report.message
    assert verify_bytes(three.pdf, ca_pem=public["ca"], previous=two.pdf).ok


def test_reordered_chain_is_broken(chain, public):
    """A later certificate given as the previous one: broken chain."""
    one, two, _three = chain
    report = verify_bytes(two.jws.encode(), ca_pem=public["ca"], previous=two.jws.encode())
    assert (report.ok, report.kind) == (False, "broken_chain")
    report = verify_bytes(one.jws.encode(), ca_pem=public["ca"], previous=two.jws.encode())
    assert (report.ok, report.kind) == (False, "broken_chain")
    assert "first of its chain" in report.message


@pytest.mark.skipif(shutil.which("pdfsig") is None, reason="pdfsig (poppler-utils) not installed")
def test_pdfsig_reports_the_signature_valid(issued, tmp_path):
    """Poppler's pdfsig finds one PAdES signature, valid, covering the whole document."""
    path = tmp_path / f"{issued.serial}.pdf"
    path.write_bytes(issued.pdf)
    out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True, check=False)
    assert "Signature Validation: Signature is Valid." in out.stdout, out.stdout + out.stderr
    assert "ETSI.CAdES.detached" in out.stdout
    assert "Total document signed" in out.stdout


def _last_analyze(ctx, table: str):
    with ctx.sessions() as session:
        if session.get_bind().dialect.name != "postgresql":
            return None
        return session.scalar(select(func.pg_stat_get_last_analyze_time(
            func.to_regclass(table))))


def test_issuing_many_refreshes_the_planners_statistics(ctx, tmp_path, keys, monkeypatch):
    """Past ANALYZE_AFTER disposals, issuing analyses ``disposals`` (before: for the
    certificates' queries by id; after: for delivery's by certificate) on PostgreSQL, so that
    a state just reached by many is not planned as a rare one. SQLite: nothing to do."""
    import retentiond.certificates.issue as issue_mod

    standard_set(ctx, tmp_path)
    monkeypatch.setattr(issue_mod, "ANALYZE_AFTER", 3)
    calls: list[tuple[str, ...]] = []
    real = issue_mod.refresh_statistics

    def spy(factory, *tables):
        calls.append(tables)
        return real(factory, *tables)

    monkeypatch.setattr(issue_mod, "refresh_statistics", spy)
    before = _last_analyze(ctx, "disposals")
    issued = issue_certificates(ctx, signer_for(keys), batch="run")
    assert sum(c.records for c in issued) == 5
    assert calls == [("disposals",), ("disposals", "certificate_items")]
    after = _last_analyze(ctx, "disposals")
    if ctx.sessions.kw["bind"].dialect.name == "postgresql":
        assert after is not None and after != before
    calls.clear()
    monkeypatch.setattr(issue_mod, "ANALYZE_AFTER", 6)
    assert issue_certificates(ctx, signer_for(keys), batch="run") == []
    assert calls == []


def test_refresh_statistics_refuses_unknown_tables_and_survives_a_refusal(ctx, monkeypatch):
    """Only the tables it knows (no SQL from a caller); a database refusal is logged and the
    work goes on."""
    from sqlalchemy.exc import ProgrammingError

    from retentiond.registry.db import refresh_statistics

    with pytest.raises(ValueError, match="not a table it refreshes"):
        refresh_statistics(ctx.sessions, "disposals; DROP TABLE records")
    dialect = ctx.sessions.kw["bind"].dialect.name
    assert refresh_statistics(ctx.sessions, "disposals") is (dialect == "postgresql")
    if dialect != "postgresql":
        return

    def refuse(self, statement, *args, **kwargs):
        raise ProgrammingError(str(statement), None, Exception("must be owner of table"))

    from sqlalchemy.orm import Session

    monkeypatch.setattr(Session, "execute", refuse)
    assert refresh_statistics(ctx.sessions, "disposals") is False


def test_a_case_that_moves_after_the_list_is_taken_is_not_certified(ctx, tmp_path, keys,
                                                                     monkeypatch):
    """Issuing lists the executed disposals once, then each certificate locks its own: one
    that stops being executed in between (here: failed by another session) is not stated,
    and one executed in between waits for the next run, never silently dropped."""
    import retentiond.certificates.issue as issue_mod

    ids = standard_set(ctx, tmp_path)
    moved, late = ids[0], ids[-1]
    with ctx.sessions.begin() as session:  # not executed yet when the list is taken
        session.execute(m.Disposal.__table__.update().where(m.Disposal.id == late)
                        .values(state="approved"))
    real = issue_mod._issue_one
    done: list[bool] = []

    def swap_first(*args, **kwargs):
        if not done:
            done.append(True)
            with ctx.sessions.begin() as session:
                session.execute(m.Disposal.__table__.update().where(m.Disposal.id == moved)
                                .values(state="failed"))
                session.execute(m.Disposal.__table__.update().where(m.Disposal.id == late)
                                .values(state="executed"))
        return real(*args, **kwargs)

    monkeypatch.setattr(issue_mod, "_issue_one", swap_first)
    issued = issue_certificates(ctx, signer_for(keys), batch="run")
    stated = {r["disposal_id"] for c in _certs(ctx) for r in c.document["records"]}
    assert moved not in stated and late not in stated
    assert sum(c.records for c in issued) == len(ids) - 2
    with ctx.sessions() as session:
        assert session.get_one(m.Disposal, moved).state == "failed"
    monkeypatch.setattr(issue_mod, "_issue_one", real)
    (again,) = issue_certificates(on(ctx, TODAY, hour=13), signer_for(keys), batch="run")
    assert again.records == 1
    assert {r["disposal_id"] for r in _certs(ctx)[-1].document["records"]} == {late}
