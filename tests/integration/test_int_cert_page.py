"""The certificate's page, as a school business manager reads it (the PDF's text through
poppler's pdftotext): outcomes in words, what remains and until when, a person's finding in
their words, rows in a stable order, and the service's codes only in the annex."""

from __future__ import annotations

import datetime as dt
import shutil
import subprocess
from pathlib import Path

import pytest
from cert_support import make_keys, signer_for

from retentiond.certificates.document import (
    AgreementFacts,
    Evidence,
    ItemFacts,
    build_document,
    document_hash,
)
from retentiond.certificates.jws import sign_document
from retentiond.certificates.pdf import render_pdf, sign_pdf

T = dt.datetime(2026, 11, 22, 10, 30, tzinfo=dt.UTC)
RULE = ("isa.education.pupil_record", "Education data: until the subject's 25th birthday",
        "ISA 'Effective Sharing of Educational Indicators', retention: education data")


def _item(n: int, record: str, action: str, **kw: object) -> ItemFacts:
    base: dict[str, object] = {
        "disposal_id": n, "record": record, "category": "education.pupil_record",
        "agreement": "ISA-01", "rule_id": RULE[0], "rule_title": RULE[1], "citation": RULE[2],
        "policy_version": "b604b140d3f3d278", "action": action, "manual": False,
        "method": "deleted 2 rows (pupils 1, pupil_marks 1) in one transaction",
        "verification": "mis.exists() is false after the delete", "systems": ("mis",),
        "package_sha256": None, "evidence": None, "executed_at": T + dt.timedelta(minutes=n),
        "approved_by": ("a.approver",), "approver_roles": ("approver",),
    }
    base.update(kw)
    return ItemFacts(**base)  # type: ignore[arg-type]


def _text(pdf: bytes, tmp: Path) -> str:
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp / "c.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True, check=True)
    return " ".join(out.stdout.split())


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test signing keys."""
    return make_keys(tmp_path_factory.mktemp("keys"))


def _render(doc: dict, keys: Path) -> bytes:
    signer = signer_for(keys)
    signed = sign_document(doc, jwk=signer.jwk, kid=signer.kid, chain_der=signer.jws_chain_der)
    return sign_pdf(render_pdf(doc, signed, kid=signer.kid, sha256=document_hash(doc)), signer,
                    serial=doc["serial"])


def _doc(items: list[ItemFacts], **extra: object) -> dict:
    doc = build_document(
        serial="SCH-01-000009", sequence=9, batch="run-x", issued_at=T + dt.timedelta(hours=1),
        issuer="Synthetic Borough Council", issuer_contact="ig@la01.example",
        controller_code="SCH-01", controller_name="Synthetic School One",
        agreements=[AgreementFacts(code="ISA-01", title="Synthetic agreement")], items=items,
        categories={"education.pupil_record": "Education data"}, previous=None,
        audit_head=None, software="retentiond test", remaining_copies=[])
    doc.update(extra)
    return doc


def test_the_page_speaks_to_a_school_and_keeps_codes_in_the_annex(keys, tmp_path):
    """What was done and how in words, what remains until when (remaining_copies), a
    person's finding (outcome confirmed_not_found with outcome_note), records listed by
    reference whatever the order executed; category codes, rule ids, policy versions and
    system names only in Annex A."""
    items = [_item(1, "PUP-0003", "delete"), _item(2, "PUP-0001", "delete"),
             _item(3, "PUP-0002", "delete", manual=True, systems=("paper archive",),
                   evidence=Evidence(destroyed_by="Shred-It Synthetic Ltd",
                                     destroyed_on=dt.date(2026, 11, 20), method="cross-cut",
                                     certificate_no="SH-77", confirmed_by="a.officer",
                                     confirmed_at=T))]
    doc = _doc(items, remaining_copies=[
        {"system": "mis", "what": "backup copies", "expire_by": "2026-12-27"}])
    doc["records"][2]["outcome"] = "confirmed_not_found"
    doc["records"][2]["outcome_note"] = "destroyed in the 2019 flood, confirmed by the bursar"
    assert [r["record"] for r in doc["records"]] == ["PUP-0001", "PUP-0002", "PUP-0003"]
    page = _text(_render(doc, keys), tmp_path)
    main, annex = page.split("Annex A", 1)
    assert "Certificate of disposal" in main
    assert "Education data 3 1 deleted, 1 destroyed by hand, 1 not found (confirmed by a person)" \
        in main
    assert "Backup copies held by mis expire by 27 December 2026." in main
    assert "destroyed in the 2019 flood, confirmed by the bursar" in main
    assert "The service does not state that it deleted it." in main
    assert "Approved before anything was done: 3 records by one person." in main
    assert "The approvers acted as: approver." in main
    for code in ("education.pupil_record", "isa.education.pupil_record", "b604b140d3f3d278",
                 "exists()"):
        assert code not in main and code in annex
    rows = main.split("The records", 1)[1]
    assert rows.index("PUP-0001") < rows.index("PUP-0002") < rows.index("PUP-0003")


def test_without_remaining_copies_the_page_claims_nothing_about_backups(keys, tmp_path):
    """No remaining_copies in the document: the page says it makes no statement about copies
    that may outlive the deletion (never that none remain); an empty list: none declared."""
    doc = _doc([_item(1, "PUP-0001", "delete")])
    del doc["remaining_copies"]  # as in certificates issued before copies were recorded
    page = _text(_render(doc, keys), tmp_path)
    assert "makes no statement about copies that may outlive the deletion" in page
    page = _text(_render(dict(doc, remaining_copies=[]), keys), tmp_path)
    assert "declare no copies that outlive the deletion" in page
