"""The certificate for people: an A4 PDF rendered from the signed document (fpdf2), with the
signed JSON attached, and a PAdES signature (pyHanko) over the whole file.

The page layout is described, with a picture, in ``docs/certificates.md``. Everything on the
page comes from the signed document, so the PDF says nothing the JSON does not.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from typing import Any
from zoneinfo import ZoneInfo

from retentiond.certificates.keys import Signer

LONDON = ZoneInfo("Europe/London")

_ACTION_LABELS = {
    "deleted": "Deleted",
    "returned": "Returned",
    "anonymised": "Anonymised",
    "transferred": "Transferred",
    "manual": "Destroyed by hand",
    "confirmed_not_found": "Not found (confirmed by a person)",
}

# The core PDF fonts cover Latin-1 only: map common typography, replace anything else.
_TRANSLATE = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                            "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u00a0": " ",
                            "\u2022": "*"})


def _t(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.translate(_TRANSLATE).encode("latin-1", "replace").decode("latin-1")


def _when(iso: str | None, *, time: bool = True) -> str:
    """An ISO instant as UK local time, the way a person reads it."""
    if not iso:
        return "-"
    t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(LONDON)
    return t.strftime("%-d %b %Y %H:%M") + " UK time" if time else t.strftime("%-d %b %Y")


def _day(iso: str | None) -> str:
    if not iso:
        return "-"
    return dt.date.fromisoformat(iso).strftime("%-d %b %Y")


def _summary(doc: dict[str, Any]) -> str:
    by_action = doc["totals"]["by_action"]
    parts = [f"{n} {_ACTION_LABELS.get(a, a).lower()}" for a, n in by_action.items()]
    n = doc["totals"]["records"]
    return f"{n} record{'s' if n != 1 else ''}: {', '.join(parts)}"


def render_pdf(doc: dict[str, Any], signed_json: str, *, kid: str, sha256: str) -> bytes:
    """The unsigned PDF of a certificate, with ``SERIAL.json`` (the signed JSON) attached."""
    from fpdf import FPDF, FontFace
    from fpdf.enums import XPos, YPos

    serial = doc["serial"]

    class _Pdf(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("Helvetica", size=7.5)
            self.set_text_color(90)
            self.cell(0, 5, _t(f"Disposal certificate {serial}  |  page {self.page_no()} of "
                               "{nb}  |  contains no personal data"), align="C")

    pdf = _Pdf(format="A4")
    pdf.set_title(f"Disposal certificate {serial}")
    pdf.set_author(_t(doc["issuer"]["name"]))
    pdf.set_subject(f"Records disposed of for {_t(doc['controller']['name'])}")
    pdf.set_creator(_t(doc["issuer"].get("software") or "retentiond"))
    pdf.set_creation_date(dt.datetime.fromisoformat(doc["issued_at"].replace("Z", "+00:00")))
    pdf.set_auto_page_break(True, margin=16)
    pdf.set_margins(16, 14, 16)
    pdf.add_page()
    width = pdf.epw

    def heading(text: str) -> None:
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", 11.5)
        pdf.set_text_color(0, 48, 120)
        pdf.cell(0, 7, _t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_draw_color(0, 48, 120)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())
        pdf.ln(1.5)
        pdf.set_text_color(0)

    def field(label: str, value: str, *, mono: bool = False) -> None:
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(46, 5.2, _t(label))
        pdf.set_font("Courier" if mono else "Helvetica", size=8.5 if mono else 9.5)
        pdf.multi_cell(width - 46, 5.2, _t(value), align="L", new_x=XPos.LMARGIN,
                       new_y=YPos.NEXT)

    # Title band
    pdf.set_fill_color(0, 48, 120)
    pdf.set_text_color(255)
    pdf.set_font("Helvetica", "B", 19)
    pdf.cell(0, 13, "  Certificate of disposal", fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=10)
    pdf.cell(0, 7, _t(f"  Serial {serial}  -  certificate number {doc['sequence']} for "
                      f"{doc['controller']['name']}"), fill=True,
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)
    pdf.ln(3)

    issuer = doc["issuer"]["name"] + (f" ({doc['issuer']['contact']})"
                                      if doc["issuer"].get("contact") else "")
    field("Issued by", issuer)
    field("Issued to (controller)", f"{doc['controller']['name']} ({doc['controller']['code']})")
    agreements = "; ".join(f"{a['code']}: {a['title']}" for a in doc["agreements"]) or \
        "none recorded"
    field("Agreement" + ("s" if len(doc["agreements"]) > 1 else ""), agreements)
    field("Issued at", _when(doc["issued_at"]))
    field("Records", _summary(doc))
    pdf.ln(2)
    pdf.set_font("Helvetica", "I", 9.5)
    pdf.multi_cell(width, 5, _t(doc["statement"]), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    heading("Records disposed of")
    pdf.set_font("Helvetica", size=8.5)
    pdf.set_fill_color(255)
    pdf.set_draw_color(150)
    with pdf.table(col_widths=(6, 21, 25, 15, 16, 17), text_align="LEFT", line_height=4.6,
                   headings_style=FontFace(emphasis="BOLD", fill_color=(225, 232, 245)),
                   cell_fill_color=(246, 247, 250), cell_fill_mode="ROWS",
                   padding=1.2) as table:
        table.row(["#", "Record reference", "Category", "Action", "When (UK time)", "Approved by"])
        for i, r in enumerate(doc["records"], start=1):
            table.row([str(i), _t(r["record"]), _t(r["category"]),
                       _t(_ACTION_LABELS.get(r["action"], r["action"])),
                       _t(_when(r["executed_at"]).removesuffix(" UK time")),
                       _t(", ".join(r["approved_by"]) or "-")])

    heading("Details of each record")
    for i, r in enumerate(doc["records"], start=1):
        if pdf.will_page_break(28):
            pdf.add_page()
        pdf.set_font("Helvetica", "B", 9.5)
        pdf.cell(0, 5.5, _t(f"{i}. {r['record']}  ({r['category']})"),
                 new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        rule = r["rule"]["id"] + (f" - {r['rule']['citation']}" if r["rule"].get("citation") else "")
        label = _ACTION_LABELS.get(r["action"], r["action"])
        action = label
        if r["action"] == "manual":
            action += f" (the rule's action: {r['requested_action']})"
        if r.get("method") and r["method"].lower() != label.lower():
            action += f": {r['method']}"
        rows = [
            ("Retention rule", rule),
            ("Policy version", f"{r['policy_version']} (due on {_day(r['due_on'])})"),
            ("Agreement", r.get("agreement") or "-"),
            ("Action", action),
            ("Removed from", ", ".join(r["systems"]) or "-"),
        ]
        if r.get("verification"):
            rows.append(("How it was checked", r["verification"]))
        if r.get("package_sha256"):
            rows.append(("Returned package SHA-256", r["package_sha256"]))
        if r.get("outcome") == "confirmed_not_found":
            rows.append(("What a person confirmed", r.get("outcome_note") or "-"))
        if r.get("evidence"):
            e = r["evidence"]
            rows.append(("Evidence of destruction",
                         f"destroyed by {e.get('destroyed_by') or '-'} on "
                         f"{_day(e.get('destroyed_on'))}, {e.get('method') or 'method not stated'}"
                         + (f", certificate no. {e['certificate_no']}" if e.get("certificate_no") else "")
                         + (f"; confirmed by {e['confirmed_by']}" if e.get("confirmed_by") else "")))
        rows.append(("When", _when(r["executed_at"])))
        rows.append(("Approved by", ", ".join(r["approved_by"]) or "-"))
        for label, value in rows:
            pdf.set_font("Helvetica", "B", 8)
            pdf.set_x(pdf.l_margin + 4)
            pdf.cell(42, 4.4, _t(label))
            mono = label.endswith("SHA-256")
            pdf.set_font("Courier" if mono else "Helvetica", size=8)
            pdf.multi_cell(width - 46, 4.4, _t(value), align="L", new_x=XPos.LMARGIN,
                           new_y=YPos.NEXT)
        pdf.ln(1.5)

    heading("What remains, and until when")
    pdf.set_font("Helvetica", size=8.5)
    for c in doc.get("remaining_copies") or []:
        until = f"expire by {_day(c['expire_by'])}" if c.get("expire_by") else \
            "no date by which they expire can be stated"
        pdf.multi_cell(width, 4.5, _t(f"{c['what'][:1].upper()}{c['what'][1:]} held by "
                                      f"{c['system']}: {until}."),
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    if pdf.will_page_break(75):
        pdf.add_page()
    heading("Integrity: how to check this certificate")
    prev = doc.get("previous")
    field("This certificate's SHA-256", sha256, mono=True)
    field("Previous certificate", f"{prev['serial']} (number {prev['sequence']})" if prev
          else "none: this is the first certificate for this controller")
    if prev:
        field("Previous SHA-256", prev["sha256"], mono=True)
    head = doc.get("audit_head")
    field("Audit trail at issue", f"event {head['seq']}" if head else "not recorded")
    if head:
        field("Audit head SHA-256", head["sha256"], mono=True)
    field("Signing key id", kid, mono=True)
    pdf.ln(2)
    pdf.set_font("Helvetica", size=8.5)
    pdf.multi_cell(width, 4.5, _t(
        f"This PDF carries a digital signature (PAdES) by the issuer's certificate; a PDF reader "
        f"shows whether it is intact. The same certificate, signed for machines (JWS, Ed25519), "
        f"is attached to this PDF as {serial}.json. Either can be checked with the issuer's "
        f"published CA certificate or public key set, for example with 'retentiond certificates "
        f"verify {serial}.pdf --ca ca.pem', or with any JOSE library. The SHA-256 above is the "
        f"hash of the signed JSON content; the next certificate for this controller quotes it, "
        f"so a missing or replaced certificate shows as a broken chain. Records are named by "
        f"their reference in the issuer's register only; this certificate holds no personal "
        f"data."), new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    pdf.embed_file(bytes=signed_json.encode(), basename=f"{serial}.json",
                   desc="The signed certificate (JWS, flattened JSON serialisation)",
                   mime_type="application/json",
                   modification_date=dt.datetime.fromisoformat(
                       doc["issued_at"].replace("Z", "+00:00")))
    return bytes(pdf.output())


@functools.lru_cache(maxsize=4)
def _pdf_signer(key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> Any:
    """A pyHanko signer for the PAdES key, made once per key: pyHanko's SimpleSigner parses
    (and OpenSSL validates) an RSA key on every signature, which costs more than the rest of
    issuing a certificate."""
    from asn1crypto import keys as akeys
    from asn1crypto import x509 as ax509
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    from pyhanko.sign import signers
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    der = serialization.Encoding.DER
    # Our own key file (written 0600 by 'keys init' or the operator): skip OpenSSL's slow
    # RSA consistency check.
    key = serialization.load_pem_private_key(key_pem, password=None,
                                             unsafe_skip_rsa_key_validation=True)
    cert = x509.load_pem_x509_certificate(cert_pem)
    ca = x509.load_pem_x509_certificate(ca_pem)

    digests: dict[str, type[hashes.SHA256 | hashes.SHA384 | hashes.SHA512]] = {
        "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}

    class _CachedKeySigner(signers.SimpleSigner):
        def sign_raw(self, data: bytes, digest_algorithm: str) -> bytes:
            mech = self.get_signature_mechanism_for_digest(digest_algorithm)
            try:
                algo = mech.signature_algo
            except ValueError:
                algo = mech["algorithm"].native
            if algo == "rsassa_pkcs1v15" and isinstance(key, RSAPrivateKey) \
                    and digest_algorithm in digests:
                return key.sign(data, PKCS1v15(), digests[digest_algorithm]())
            return bytes(super().sign_raw(data, digest_algorithm))

    return _CachedKeySigner(
        signing_cert=ax509.Certificate.load(cert.public_bytes(der)),
        signing_key=akeys.PrivateKeyInfo.load(key.private_bytes(
            der, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())),
        cert_registry=SimpleCertificateStore.from_certs(  # type: ignore[no-untyped-call]
            [ax509.Certificate.load(ca.public_bytes(der))]),
    )


def sign_pdf(pdf: bytes, signer: Signer, *, serial: str) -> bytes:
    """Add a PAdES (ETSI.CAdES.detached) signature over the whole file."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import signers
    from pyhanko.sign.fields import SigSeedSubFilter

    meta = signers.PdfSignatureMetadata(
        field_name="IssuerSignature", md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES, reason=f"Disposal certificate {serial}",
        location=signer.issuer[:100], name=signer.issuer[:100],
    )
    simple = _pdf_signer(signer.signing_key_pem, signer.signing_cert_pem, signer.ca_cert_pem)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    out = signers.sign_pdf(writer, meta, signer=simple)
    return bytes(out.getvalue())
