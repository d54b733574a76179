"""The certificate for people: an A4 PDF rendered from the signed document (fpdf2), with the
signed JSON attached, and a PAdES signature (pyHanko) over the whole file.

Written for the person at a school who reads it: what was done, how, on whose authority, and
what remains, in words (``wording.py``); the service's codes (category codes, rule ids,
policy versions, system names, the service's own account of each deletion and its check) are
in Annex A, the hashes and keys in Annex B. Everything on the page comes from the signed
document, so the PDF says nothing the JSON does not. The layout is in
``docs/certificates.md``, with a picture.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from typing import Any

from retentiond.certificates.keys import Signer
from retentiond.wording import certificates as w

# The core PDF fonts cover Latin-1 only: map common typography, replace anything else.
_TRANSLATE = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"',
                            "\u2013": "-", "\u2014": "-", "\u2026": "...", "\u00a0": " ",
                            "\u2022": "*"})
_BLUE = (0, 48, 120)
_HEAD_FILL = (225, 232, 245)
_ROW_FILL = (246, 247, 250)


def _t(value: Any) -> str:
    text = "" if value is None else str(value)
    return text.translate(_TRANSLATE).encode("latin-1", "replace").decode("latin-1")


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


_MM_PER_PT = 25.4 / 72
#: Widths of the core fonts' characters, in thousandths of the font size, by Latin-1 code.
_UNITS: dict[tuple[str, str], list[int]] = {}


def _char_widths(pdf: Any, family: str, style: str, size: float) -> list[float]:
    """Sets the font; returns its characters' widths in mm by Latin-1 code (every text drawn
    is Latin-1: ``_t``). The PDF core fonts' widths are fixed tables: no text engine needed."""
    pdf.set_font(family, style, size)
    units = _UNITS.get((family, style))
    if units is None:
        cw = pdf.current_font.cw
        units = _UNITS[(family, style)] = [cw.get(chr(i), 0) for i in range(256)]
    scale = size * _MM_PER_PT / 1000
    return [u * scale for u in units]


def _wrap(text: str, width: float, cw: list[float]) -> list[str]:
    """``text`` in lines no wider than ``width`` mm: words kept whole where they fit, a word
    wider than the line broken across lines (never cut), each newline a new line."""
    lines: list[str] = []
    space = cw[32]
    for paragraph in text.split("\n"):
        line, line_w = "", 0.0
        for word in paragraph.split(" "):
            word_w = sum(cw[ord(c)] for c in word)
            if line and line_w + space + word_w <= width:
                line, line_w = f"{line} {word}", line_w + space + word_w
                continue
            if line:
                lines.append(line)
            line, line_w = "", 0.0
            if word_w <= width:
                line, line_w = word, word_w
                continue
            for char in word:
                char_w = cw[ord(char)]
                if line and line_w + char_w > width:
                    lines.append(line)
                    line, line_w = "", 0.0
                line, line_w = line + char, line_w + char_w
        lines.append(line)
    return lines



class _Table:
    """A table laid out here rather than by fpdf2's ``table()``, which measures and breaks
    every cell's text line by line through its general text engine (about 25 s for a
    certificate of 1,000 records, most of issuing it). Here the fonts are the PDF core fonts,
    whose character widths are a fixed table: each cell is wrapped once by summing them, and
    drawn as a filled, bordered rectangle and one ``text`` a line. Nothing is cut: a word wider
    than its column is broken across lines, and a row taller than what is left of a page
    goes on over the next one (the header row repeated at the top of every page)."""

    def __init__(self, pdf: Any, widths: tuple[float, ...], *, size: float,
                 mono: tuple[int, ...]) -> None:
        self.pdf = pdf
        total = sum(widths)
        self.widths = [pdf.epw * w / total for w in widths]
        self.size = size
        self.mono = set(mono)
        self.line_h = size * 0.53
        self.pad = 1.1

    def _font(self, family: str, style: str, size: float) -> tuple[str, str, float, list[float]]:
        return family, style, size, _char_widths(self.pdf, family, style, size)

    def _row(self, cells: list[list[str]], fonts: list[tuple[str, str, float, list[float]]],
             fill: tuple[int, int, int] | None, head: list[str] | None) -> None:
        """Draw one row (continuing over pages as needed)."""
        pdf = self.pdf
        start = 0
        height = max(len(lines) for lines in cells)
        while start < height:
            room = int((pdf.page_break_trigger - pdf.get_y() - 2 * self.pad) // self.line_h)
            if room < 1 or (start == 0 and room < height and pdf.get_y() > pdf.t_margin + 30
                            and head is not None):
                pdf.add_page()
                if head is not None:
                    self.draw_head(head)
                continue
            take = min(room, height - start)
            self._segment([lines[start:start + take] for lines in cells], fonts, fill, take)
            start += take

    def _segment(self, cells: list[list[str]], fonts: list[tuple[str, str, float, list[float]]],
                 fill: tuple[int, int, int] | None, lines: int) -> None:
        pdf = self.pdf
        y = pdf.get_y()
        h = lines * self.line_h + 2 * self.pad
        pdf.set_fill_color(*(fill or (255, 255, 255)))
        x = pdf.l_margin
        for width in self.widths:
            pdf.rect(x, y, width, h, style="DF")
            x += width
        x = pdf.l_margin
        for width, lines_of_cell, (family, style, size, _cw) in zip(self.widths, cells, fonts,
                                                                    strict=True):
            pdf.set_font(family, style, size)
            # The baseline as fpdf2 places a line of text in a cell of the line's height.
            base = y + self.pad + 0.5 * self.line_h + 0.3 * size * _MM_PER_PT
            for i, line in enumerate(lines_of_cell):
                if line:
                    pdf.text(x + self.pad, base + i * self.line_h, line)
            x += width
        pdf.set_y(y + h)

    def _fonts(self, bold: bool) -> list[tuple[str, str, float, list[float]]]:
        plain = self._font("Helvetica", "B" if bold else "", self.size)
        fixed = self._font("Courier", "B" if bold else "", self.size - 1)
        return [fixed if i in self.mono and not bold else plain for i in range(len(self.widths))]

    def _lines(self, row: list[str], fonts: list[tuple[str, str, float, list[float]]]
               ) -> list[list[str]]:
        return [_wrap(value, width - 2 * self.pad, font[3])
                for value, width, font in zip(row, self.widths, fonts, strict=True)]

    def draw_head(self, head: list[str]) -> None:
        fonts = self._fonts(bold=True)
        lines = self._lines(head, fonts)
        self._segment(lines, fonts, _HEAD_FILL, max(len(c) for c in lines))

    def draw(self, head: list[str], rows: list[list[str]]) -> None:
        pdf = self.pdf
        pdf.set_draw_color(150)
        pdf.set_line_width(0.2)
        self._row(self._lines(head, self._fonts(bold=True)), self._fonts(bold=True),
                  _HEAD_FILL, None)
        fonts = self._fonts(bold=False)
        for n, row in enumerate(rows):
            self._row(self._lines(row, fonts), fonts, _ROW_FILL if n % 2 else None, head)
        pdf.set_fill_color(255)


def render_pdf(doc: dict[str, Any], signed_json: str, *, kid: str, sha256: str) -> bytes:
    """The unsigned PDF of a certificate, with ``SERIAL.json`` (the signed JSON) attached."""
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    serial = doc["serial"]
    records = doc["records"]

    class _Pdf(FPDF):
        def footer(self) -> None:
            self.set_y(-12)
            self.set_font("Helvetica", size=7.5)
            self.set_text_color(90)
            self.cell(0, 5, _t(f"{w.title(doc)} {serial}  |  page {self.page_no()} of "
                               "{nb}  |  contains no personal data"), align="C")

    pdf = _Pdf(format="A4")
    pdf.set_title(f"{w.title(doc)} {serial}")
    pdf.set_author(_t(doc["issuer"]["name"]))
    pdf.set_subject(f"Records of {_t(doc['controller']['name'])}")
    pdf.set_creator(_t(doc["issuer"].get("software") or "retentiond"))
    pdf.set_creation_date(dt.datetime.fromisoformat(doc["issued_at"].replace("Z", "+00:00")))
    pdf.set_auto_page_break(True, margin=16)
    pdf.set_margins(16, 14, 16)
    pdf.add_page()
    width = pdf.epw

    def heading(text: str, *, size: float = 12) -> None:
        if pdf.will_page_break(22):
            pdf.add_page()
        pdf.ln(3)
        pdf.set_font("Helvetica", "B", size)
        pdf.set_text_color(*_BLUE)
        pdf.cell(0, 7, _t(text), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.set_draw_color(*_BLUE)
        pdf.line(pdf.l_margin, pdf.get_y(), pdf.l_margin + width, pdf.get_y())
        pdf.ln(1.5)
        pdf.set_text_color(0)

    # Paragraphs are wrapped here (``_wrap``) and drawn a line a cell: fpdf2's multi_cell
    # costs about 2 ms a paragraph, a good part of issuing a small certificate.
    def lines(text: str, left: float, w_: float, h: float, family: str, style: str,
              size: float) -> None:
        """``text`` wrapped to ``w_`` from ``left``, a line a cell (the first from here)."""
        cw = _char_widths(pdf, family, style, size)
        for i, line in enumerate(_wrap(_t(text), w_ - 2 * pdf.c_margin, cw)):
            if i:
                pdf.set_x(left)
            pdf.cell(w_, h, line, new_x=XPos.LMARGIN, new_y=YPos.NEXT)

    def para(text: str, *, size: float = 9.5, style: str = "") -> None:
        lines(text, pdf.l_margin, width, 4.9, "Helvetica", style, size)
        pdf.ln(1)

    def field(label: str, value: str, *, mono: bool = False, label_w: float = 44) -> None:
        pdf.set_font("Helvetica", "B", 9)
        pdf.cell(label_w, 5.2, _t(label))
        lines(value, pdf.l_margin + label_w, width - label_w, 5.2,
              "Courier" if mono else "Helvetica", "", 8.5 if mono else 9.5)

    def labelled(label: str, text: str) -> None:
        lines(label, pdf.l_margin, width, 5, "Helvetica", "B", 9.5)
        pdf.set_x(pdf.l_margin + 4)
        lines(text, pdf.l_margin + 4, width - 4, 4.8, "Helvetica", "", 9.5)
        pdf.ln(1.2)

    def table(head: list[str], rows: list[list[str]], widths: tuple[float, ...], *,
              size: float = 8.5, mono: tuple[int, ...] = ()) -> None:
        _Table(pdf, widths, size=size, mono=mono).draw(
            [_t(h) for h in head], [[_t(v) for v in row] for row in rows])
        pdf.ln(2)

    # --- first page: who, what, when -----------------------------------------------------
    pdf.set_fill_color(*_BLUE)
    pdf.set_text_color(255)
    pdf.set_font("Helvetica", "B", 19)
    pdf.cell(0, 13, _t(f"  {w.title(doc)}"), fill=True, new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_font("Helvetica", size=10)
    pdf.cell(0, 7, _t(f"  {serial}  -  certificate number {doc['sequence']} for "
                      f"{doc['controller']['name']}"), fill=True,
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(0)
    pdf.ln(3)
    issuer = doc["issuer"]["name"] + (f" ({doc['issuer']['contact']})"
                                      if doc["issuer"].get("contact") else "")
    field("Issued to", doc["controller"]["name"])
    field("Issued by", issuer)
    agreements = doc.get("agreements") or []
    field("Agreement" + ("s" if len(agreements) > 1 else ""),
          "; ".join(w.agreement_line(a) for a in agreements) or "none recorded")
    field("Issued on", w.local_time(doc["issued_at"]) + " (UK time)")
    field("Carried out", _cap(w.period(doc)))
    field("Records", w.summary(doc))
    pdf.ln(2)
    para(doc["statement"], style="I")

    heading("What was done")
    table(["Kind of record", "Records", "What was done"],
          [[row.category, f"{row.records:,}", _cap(row.done)] for row in w.by_category(doc)],
          (34, 10, 56))

    heading("How it was done")
    for key in w.OUTCOME_WORDS:
        if w.outcomes(doc)[key]:
            labelled(_cap(w.OUTCOME_WORDS[key]), w.OUTCOME_HOW[key])

    heading("On whose authority")
    for rule in w.rules(doc):
        labelled(rule.title, f"{rule.citation} ({w.plural(rule.records, 'record')})")
    labelled("Approval", w.approvals(doc))
    if any(a.get("terminated_on") for a in agreements):
        for a in agreements:
            if a.get("terminated_on"):
                labelled("Termination", f"{a['title']} ({a['code']}) ended on "
                         f"{w.long_date(a['terminated_on'])}. Under clause "
                         f"{a.get('clause') or '13.1'} of the agreement (termination), the "
                         "information provided under it is securely returned at the end of the "
                         "notice period.")

    heading("What remains, and until when")
    left = w.remaining(doc)
    if left is None:
        para("This certificate makes no statement about copies that may outlive the deletion "
             "in the systems that held the records (such as backups).")
    elif not left:
        para("The systems that held these records declare no copies that outlive the "
             "deletion.")
    else:
        for line in left:
            para(f"- {line}.")
    if w.outcomes(doc)["returned"]:
        para("Returned packages are left for you to collect, as the notice that came with this "
             "certificate says; they are listed below.")

    packages = w.returned_packages(doc)
    if packages:
        heading("Returned to you")
        para("Check each package you collect against its SHA-256 (for example with "
             "'sha256sum FILE' or 'Get-FileHash FILE').", size=8.5)
        table(["Record", "Package", "SHA-256"],
              [[r["record"], r.get("package_name") or "-", r["package_sha256"]] for r in packages],
              (17, 28, 55), size=8, mono=(2,))

    manual = list(w.with_outcome(doc, "manual"))
    if manual:
        heading("Destroyed by hand: the evidence")
        rows = []
        for r in manual:
            e = r.get("evidence") or {}
            rows.append([r["record"], e.get("destroyed_by") or "-",
                         w.long_date(e.get("destroyed_on")), e.get("method") or "not stated",
                         e.get("certificate_no") or "-",
                         w.local_time(e["confirmed_at"]) if e.get("confirmed_at") else "-"])
        table(["Record", "Destroyed by", "On", "How", "Their certificate no.", "Confirmed"],
              rows, (16, 20, 14, 18, 15, 17), size=8)

    missing = list(w.with_outcome(doc, "confirmed_not_found"))
    if missing:
        heading("Not found: what a person confirmed")
        table(["Record", "In their words"],
              [[r["record"], r.get("outcome_note") or "-"] for r in missing], (20, 80), size=8)

    heading("The records")
    table(["#", "Record reference", "Kind of record", "What was done", "Agreement"],
          [[str(i), r["record"], w.category_word(doc, r["category"]), _cap(w.outcome_word(r)),
            r.get("agreement") or "-"] for i, r in enumerate(records, start=1)],
          (6, 24, 30, 24, 16), size=8)

    # --- Annex A: the service's codes -----------------------------------------------------
    pdf.add_page()
    heading("Annex A: the service's codes and references", size=12.5)
    para("For the issuer's and your records officers: the codes the service uses, so that a "
         "record on this certificate can be matched to the issuer's register.", size=8.5)
    heading("Kinds of record", size=10.5)
    table(["Code", "In words"], [[row.code, row.category] for row in w.by_category(doc)],
          (45, 55), size=8, mono=(0,))
    heading("Rules and policy versions", size=10.5)
    table(["Rule", "Title", "Policy version(s)"],
          [[rule.id, rule.title, ", ".join(rule.policy_versions)] for rule in w.rules(doc)],
          (34, 46, 20), size=8, mono=(0, 2))
    heading("Each record", size=10.5)
    table(["#", "Record", "Kind (code)", "Rule", "System", "Approved by (user names)"],
          [[str(i), r["record"], r["category"], r["rule"]["id"], ", ".join(r["systems"]) or "-",
            ", ".join(r.get("approved_by") or ()) or "-"]
           for i, r in enumerate(records, start=1)],
          (6, 18, 22, 24, 12, 18), size=7.5)
    heading("How each was done and checked, in the service's words", size=10.5)
    table(["#", "Record", "Done", "Checked"],
          [[str(i), r["record"], r.get("method") or "-", r.get("verification") or "-"]
           for i, r in enumerate(records, start=1)],
          (6, 18, 46, 30), size=7.5)

    # --- Annex B: integrity ---------------------------------------------------------------
    if pdf.will_page_break(80):
        pdf.add_page()
    heading("Annex B: how to check this certificate", size=12.5)
    prev = doc.get("previous")
    field("This certificate's SHA-256", sha256, mono=True, label_w=48)
    field("Previous certificate", f"{prev['serial']} (number {prev['sequence']})" if prev
          else "none: this is the first certificate for you", label_w=48)
    if prev:
        field("Previous SHA-256", prev["sha256"], mono=True, label_w=48)
    head = doc.get("audit_head")
    field("Audit trail at issue", f"event {head['seq']}" if head else "not recorded", label_w=48)
    if head:
        field("Audit head SHA-256", head["sha256"], mono=True, label_w=48)
    field("Signing key id", kid, mono=True, label_w=48)
    field("Batch", doc.get("batch") or "-", label_w=48)
    pdf.ln(2)
    para(f"This PDF carries a digital signature (PAdES) by the issuer's certificate; a PDF "
         f"reader shows whether it is intact. The same certificate, signed for machines (JWS, "
         f"Ed25519, in one or more numbered parts), is attached to this PDF as {serial}.json. "
         f"Either can be checked with the issuer's published CA certificate or public key set, "
         f"for example with 'retentiond certificates verify {serial}.pdf --ca ca.pem', or with "
         f"any JOSE library. The SHA-256 above is the hash of the whole signed certificate; the "
         f"next certificate for you quotes it, so a missing or replaced certificate shows as a "
         f"broken chain. Records are named by their reference in the issuer's register only; "
         f"this certificate holds no personal data, and no date that follows from a child's "
         f"details.", size=8.5)

    pdf.embed_file(bytes=signed_json.encode(), basename=f"{serial}.json",
                   desc="The signed certificate (JWS parts, flattened JSON serialisation)",
                   mime_type="application/json",
                   modification_date=dt.datetime.fromisoformat(
                       doc["issued_at"].replace("Z", "+00:00")))
    return bytes(pdf.output())


@functools.lru_cache(maxsize=1)
def _pdf_signer(key_pem: bytes, cert_pem: bytes, ca_pem: bytes) -> tuple[int, Any]:
    """The bytes to reserve for a signature, and a pyHanko signer for the PAdES key, made
    once per key: pyHanko's SimpleSigner parses
    (and OpenSSL validates) an RSA key on every signature, which costs more than the rest of
    issuing a certificate. Keyed by the key and certificates read by ``load_signer``, so new
    keys are used from the next certificate; one entry only, so a retired key is not kept
    in the process once its successor has signed."""
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

    # Room for the CMS signature in the file, fixed per key: pyHanko would otherwise make a
    # dummy signature with the RSA key for every certificate only to measure it (a third of
    # the time of signing). The CMS holds the two certificates, one RSA signature and a few
    # signed attributes; twice their size and 4 KB more is far more than enough (a file
    # whose signature did not fit would be refused by pyHanko: sign_pdf then measures).
    sizes = len(cert.public_bytes(der)) + len(ca.public_bytes(der)) + key.key_size // 8  # type: ignore[union-attr]
    reserve = 4096 + 2 * sizes
    return reserve, _CachedKeySigner(
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
    from pyhanko.sign.general import SigningError

    meta = signers.PdfSignatureMetadata(
        field_name="IssuerSignature", md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES, reason=f"Disposal certificate {serial}",
        location=signer.issuer[:100], name=signer.issuer[:100],
    )
    reserve, simple = _pdf_signer(signer.signing_key_pem, signer.signing_cert_pem,
                                  signer.ca_cert_pem)
    try:
        out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=simple,
                               bytes_reserved=reserve)
    except SigningError:
        # The signature did not fit the room reserved (a key or chain larger than any this
        # service makes): let pyHanko measure it.
        out = signers.sign_pdf(IncrementalPdfFileWriter(io.BytesIO(pdf)), meta, signer=simple)
    return bytes(out.getvalue())
