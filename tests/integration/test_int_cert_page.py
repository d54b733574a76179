"""The certificate's page, as a school business manager reads it (the PDF's text through
poppler's pdftotext): outcomes in words, what remains and until when, a person's finding in
their words, rows in a stable order, and the service's codes only in the annex."""

from __future__ import annotations

import datetime as dt
import re
import subprocess
from pathlib import Path

import pytest
from cert_support import make_keys, signer_for
from conftest import need_tool

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
    need_tool("pdftotext", "poppler-utils")
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


def _pages(pdf: bytes, tmp: Path) -> list[str]:
    """The PDF's text, page by page, in the order it is drawn (a table cell's lines one
    after the other)."""
    need_tool("pdftotext", "poppler-utils")
    path = tmp / "p.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", "-raw", str(path), "-"], capture_output=True,
                         text=True, check=True)
    return out.stdout.split("\f")


def test_long_values_are_printed_whole_never_cut(keys, tmp_path):
    """Tables are laid out by the certificates module (fixed column widths): a value longer
    than its column, with or without spaces, is wrapped and printed in full; a note longer
    than a page goes on over the next; the last day a date can name is printed as it is."""
    long_ref = "REF-" + "7" * 120  # one "word", far wider than its column
    note = " ".join(f"word{i:04d}" for i in range(900))  # taller than one page in its column
    method = "deleted 3 rows in one transaction; " + "x" * 250
    items = [_item(1, long_ref, "delete", method=method),
             _item(2, "PUP-0002", "delete", manual=True, systems=("paper archive",),
                   evidence=Evidence(destroyed_by="Shred-It Synthetic Ltd",
                                     destroyed_on=dt.date(9999, 12, 31), method="cross-cut",
                                     certificate_no="SH-" + "9" * 80, confirmed_by="a.officer",
                                     confirmed_at=T)),
             _item(3, "PUP-0003", "delete")]
    doc = _doc(items)
    doc["records"][2]["outcome"] = "confirmed_not_found"
    doc["records"][2]["outcome_note"] = note
    pdf = _render(doc, keys)
    joined = "".join("".join(page.split()) for page in _pages(pdf, tmp_path))
    for value in (long_ref, method.replace(" ", ""), "SH-" + "9" * 80, "31December9999"):
        assert value in joined, value[:40]
    words = " ".join(" ".join(page.split()) for page in _pages(pdf, tmp_path)).split()
    found = [w for w in words if re.fullmatch(r"word\d{4}", w)]
    assert found == [f"word{i:04d}" for i in range(900)]  # every word, in order, once


def test_a_signature_that_does_not_fit_its_reserved_room_is_measured_instead(keys, tmp_path,
                                                                              monkeypatch):
    """The PAdES signature's room is reserved from the key's size; were it too small (a
    larger chain than the service makes), pyHanko measures it: the PDF still verifies."""
    from retentiond.certificates import pdf as pdf_module

    real = pdf_module._pdf_signer

    def tiny(*args: bytes) -> tuple[int, object]:
        _reserve, simple = real(*args)
        return 64, simple

    monkeypatch.setattr(pdf_module, "_pdf_signer", tiny)
    pdf = _render(_doc([_item(1, "PUP-0001", "delete")]), keys)
    need_tool("pdfsig", "poppler-utils")
    path = tmp_path / "s.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdfsig", str(path)], capture_output=True, text=True)
    assert "Signature is Valid." in out.stdout, out.stdout


def test_a_new_key_signs_the_next_certificate(tmp_path):
    """Signers are cached by their key and certificate: after keys are rotated, the next PDF
    is signed with the new certificate, in the same process."""
    import io

    from pyhanko.pdf_utils.reader import PdfFileReader

    from retentiond.certificates.keys import init_keys

    first, second = tmp_path / "a", tmp_path / "b"
    for keydir in (first, second):
        init_keys(keydir, issuer="Synthetic Borough Council", now=T - dt.timedelta(days=1))
    serials = []
    for keydir in (first, second, first):
        pdf = _render(_doc([_item(1, "PUP-0001", "delete")]), keydir)
        (embedded,) = PdfFileReader(io.BytesIO(pdf)).embedded_signatures
        serials.append(embedded.signer_cert.serial_number)
    assert serials[0] != serials[1] and serials[0] == serials[2]


def test_keys_replaced_in_the_same_directory_sign_the_next_certificate(tmp_path):
    """A key rotation as an operator does it (``keys init --force`` over the same directory)
    between two certificates in one process: the second certificate's JWS and PAdES signature
    are the new keys', it verifies with the new key set and CA and not with the old ones, and
    the first still verifies with the old ones (nothing cached signs with a retired key)."""
    import io

    from cert_support import settings_for
    from cryptography import x509
    from pyhanko.pdf_utils.reader import PdfFileReader

    from retentiond.certificates.keys import CA_CERT, SIGNING_CERT, init_keys, public_jwk
    from retentiond.certificates.verify import verify_bytes

    keydir = tmp_path / "keys"
    issued = []
    for force in (False, True):
        init_keys(keydir, issuer="Synthetic Borough Council", now=T - dt.timedelta(days=1),
                  force=force)
        expected = x509.load_pem_x509_certificate((keydir / SIGNING_CERT).read_bytes())
        # the first of its series (number 1, no previous), so the verifier can check it whole
        pdf = _render(_doc([_item(1, "PUP-0001", "delete")], sequence=1), keydir)
        (embedded,) = PdfFileReader(io.BytesIO(pdf)).embedded_signatures
        assert embedded.signer_cert.serial_number == expected.serial_number
        issued.append((pdf, {"keys": [public_jwk(settings_for(keydir))]},
                       (keydir / CA_CERT).read_bytes()))
    (old_pdf, old_jwks, old_ca), (new_pdf, new_jwks, new_ca) = issued
    assert old_jwks["keys"][0]["kid"] != new_jwks["keys"][0]["kid"]
    assert verify_bytes(new_pdf, jwks=new_jwks, ca_pem=new_ca).ok
    assert verify_bytes(old_pdf, jwks=old_jwks, ca_pem=old_ca).ok
    stale_pdf = verify_bytes(new_pdf, jwks=new_jwks, ca_pem=old_ca)  # PAdES: old CA
    assert not stale_pdf.ok and stale_pdf.kind == "wrong_key", stale_pdf.as_json()
    stale_jws = verify_bytes(new_pdf, jwks=old_jwks, ca_pem=new_ca)  # JWS: old key set
    assert not stale_jws.ok and stale_jws.kind == "wrong_key", stale_jws.as_json()
    from retentiond.certificates import pdf as pdf_module

    assert pdf_module._pdf_signer.cache_info().currsize == 1  # the retired key is not kept
