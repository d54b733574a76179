"""Checking a certificate file (signed JSON or PDF) with only public material: the published
key set (``jwks.json``) or the CA certificate (``ca.pem``). This is what a controller runs.

A PDF is checked twice: its PAdES signature (intact, covering the whole file, by a certificate
the given CA issued) and the signed JSON attached to it. A JSON file is checked as a JWS.
With ``previous``, the chain link between the two certificates is checked as well.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from typing import Any

from retentiond.certificates.jws import VerificationFailure, Verified, check_chain, verify_jws


@dataclass(kw_only=True)
class Report:
    """The outcome: what was checked, and the first thing wrong (``kind`` and ``message``)."""

    ok: bool = False
    kind: str | None = None
    message: str | None = None
    checks: list[str] = field(default_factory=list)
    serial: str | None = None
    controller: str | None = None
    records: int | None = None
    sha256: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "problem": None if self.ok else {"kind": self.kind,
                                                                "message": self.message},
                "checks": self.checks, "serial": self.serial, "controller": self.controller,
                "records": self.records, "sha256": self.sha256}


def is_pdf(data: bytes) -> bool:
    return data.lstrip()[:5] == b"%PDF-"


def _attachment(reader: Any) -> tuple[str, bytes]:
    """The one ``.json`` file attached to the PDF."""
    try:
        names = reader.root["/Names"]["/EmbeddedFiles"]["/Names"]
    except KeyError:
        raise VerificationFailure("altered", "the PDF has no attached signed JSON "
                                  "certificate") from None
    found = []
    for i in range(0, len(names), 2):
        name = str(names[i])
        spec = names[i + 1].get_object()
        if name.endswith(".json"):
            found.append((name, spec["/EF"]["/F"].get_object().data))
    if len(found) != 1:
        raise VerificationFailure("altered", f"expected one attached .json certificate, found "
                                  f"{len(found)}")
    return found[0]


def _check_pdf(data: bytes, ca_pem: bytes | None, report: Report) -> bytes:
    """Check the PAdES signature; return the attached signed JSON."""
    from asn1crypto import pem
    from asn1crypto import x509 as ax509
    from pyhanko.pdf_utils.misc import PdfReadError
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.errors import SignatureValidationError
    from pyhanko_certvalidator import ValidationContext

    try:
        reader = PdfFileReader(io.BytesIO(data), strict=False)
        sigs = reader.embedded_signatures
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise VerificationFailure("altered", f"the PDF is damaged and cannot be read: {exc}") from exc
    if len(sigs) != 1:
        raise VerificationFailure("altered" if sigs else "malformed",
                                  f"expected one signature in the PDF, found {len(sigs)}")
    sig = sigs[0]
    roots = []
    if ca_pem is not None:
        _, _, der = pem.unarmor(ca_pem) if pem.detect(ca_pem) else (None, None, ca_pem)
        roots = [ax509.Certificate.load(der)]
    vc = ValidationContext(trust_roots=roots, allow_fetching=False)
    try:
        status = validate_pdf_signature(sig, vc)
    except (SignatureValidationError, ValueError, KeyError, TypeError) as exc:
        raise VerificationFailure("altered", f"the PDF signature cannot be checked: {exc}") from exc
    if not status.intact or not status.valid:
        raise VerificationFailure("altered", "the PDF's signature does not match its content: "
                                  "the PDF was changed after it was signed")
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    if status.coverage != SignatureCoverageLevel.ENTIRE_FILE:
        raise VerificationFailure("altered", "the PDF was changed after it was signed: content "
                                  "was added after the signature")
    report.checks.append("PDF signature intact and covers the whole file")
    subject = status.signing_cert.subject.human_friendly
    if ca_pem is not None:
        if not status.trusted:
            raise VerificationFailure(
                "wrong_key", f"the PDF was signed by '{subject}', whose certificate the CA you "
                f"gave did not issue")
        report.checks.append(f"PDF signed by '{subject}', issued by the given CA")
    else:
        report.checks.append(f"PDF signed by '{subject}' (not checked against a CA: give --ca)")
    _, attached = _attachment(reader)
    return attached


def _verify_one(data: bytes, *, jwks: dict[str, Any] | None, ca_pem: bytes | None,
                report: Report) -> Verified:
    signed = _check_pdf(data, ca_pem, report) if is_pdf(data) else data
    verified = verify_jws(signed, jwks=jwks, ca_pem=ca_pem)
    how = "the key set" if verified.key_source == "jwks" else "the key the given CA certified"
    parts = f" ({verified.parts} parts, all present)" if verified.parts > 1 else ""
    report.checks.append(f"signed JSON verified with {how} (key id {verified.kid}){parts}")
    report.checks.append("totals match the records listed")
    return verified


def verify_bytes(data: bytes, *, jwks: dict[str, Any] | None = None,
                 ca_pem: bytes | None = None, previous: bytes | None = None) -> Report:
    """Check one certificate (and its link to ``previous``); never raises on a bad file."""
    report = Report()
    try:
        current = _verify_one(data, jwks=jwks, ca_pem=ca_pem, report=report)
        report.serial = current.doc.get("serial")
        report.controller = current.doc.get("controller", {}).get("code")
        report.records = current.doc.get("totals", {}).get("records")
        report.sha256 = current.sha256
        if previous is not None:
            sub = Report()
            try:
                prev = _verify_one(previous, jwks=jwks, ca_pem=ca_pem, report=sub)
            except VerificationFailure as exc:
                raise VerificationFailure(exc.kind, f"the previous certificate: {exc.message}") from exc
            check_chain(current, prev)
            report.checks.append(f"chain: follows {prev.doc.get('serial')} (SHA-256 "
                                 f"{prev.sha256[:16]}...)")
    except VerificationFailure as exc:
        report.kind, report.message = exc.kind, exc.message
        return report
    report.ok = True
    return report


def load_jwks(data: bytes, where: str) -> dict[str, Any]:
    """A JWK set (or one JWK) from a file's bytes."""
    try:
        doc = json.loads(data)
    except json.JSONDecodeError as exc:
        raise VerificationFailure("malformed", f"{where}: not a JSON key set: {exc}") from exc
    if isinstance(doc, dict) and "keys" not in doc and "kty" in doc:
        doc = {"keys": [doc]}
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise VerificationFailure("malformed", f"{where}: not a JSON Web Key set")
    return doc
