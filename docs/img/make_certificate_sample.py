"""Render the sample certificate shown in docs/certificates.md (synthetic data only).

    .venv/bin/python docs/img/make_certificate_sample.py /tmp/sample
    pdftoppm -png -r 70 -f 1 -l 1 -singlefile /tmp/sample/SCH-01-000002.pdf docs/img/certificate-sample
    pdftoppm -png -r 70 -f 3 -l 3 -singlefile /tmp/sample/SCH-01-000002.pdf \
        docs/img/certificate-sample-annex
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

from retentiond.certificates.document import (
    AgreementFacts,
    ChainLink,
    Evidence,
    ItemFacts,
    build_document,
    document_hash,
)
from retentiond.certificates.jws import sign_document
from retentiond.certificates.keys import init_keys, load_signer
from retentiond.certificates.pdf import render_pdf, sign_pdf
from retentiond.certificates.settings import CertificateSettings

ISSUER = "Synthetic Borough Council"
T = dt.datetime(2026, 11, 22, 10, 30, tzinfo=dt.UTC)
PACK = "b604b140d3f3d278"
EDU = ("isa.education.pupil_record", "Education data: until the subject's 25th birthday",
       "ISA 'Effective Sharing of Educational Indicators', retention: education data kept "
       "until the subjects' 25th birthday")
REF = ("isa.safeguarding.referral", "Safeguarding referral: 6 years after the report",
       "ISA 'Effective Sharing of Educational Indicators', retention: safeguarding referrals "
       "kept six years after the report")


def item(n: int, record: str, rule: tuple[str, str, str], category: str, action: str,
         **kw: object) -> ItemFacts:
    base: dict[str, object] = {
        "disposal_id": 100 + n, "record": record, "category": category, "agreement": "ISA-2024-07",
        "rule_id": rule[0], "rule_title": rule[1], "citation": rule[2], "policy_version": PACK,
        "action": action, "manual": False,
        "method": "deleted 3 rows (pupils 1, pupil_marks 2) in one transaction",
        "verification": "pupil-mis.exists() is false after the delete", "systems": ("pupil-mis",),
        "package_sha256": None, "evidence": None, "executed_at": T + dt.timedelta(minutes=n),
        "approved_by": ("a.approver",), "approver_roles": ("approver",),
    }
    base.update(kw)
    return ItemFacts(**base)  # type: ignore[arg-type]


def main(out: Path) -> Path:
    keys = Path(tempfile.mkdtemp()) / "keys"
    init_keys(keys, issuer=ISSUER, now=T - dt.timedelta(days=30))
    signer = load_signer(CertificateSettings(where="sample", issuer=ISSUER,
                                             issuer_contact="ig@la01.example", key_dir=keys,
                                             batch="daily", files={}))
    items = [
        item(1, "PUP-2019-00412", EDU, "education.pupil_record", "delete"),
        item(2, "PUP-2019-00413", EDU, "education.pupil_record", "return",
             method="returned to controller SCH-01 as an encrypted xlsx package "
                    "retentiond-disposal-102.xlsx via returns; then deleted 2 rows",
             package_name="retentiond-disposal-102.xlsx",
             package_sha256="9f2c4e0d7b1a3c5e8f6a2b4d0c9e7f1a3b5c7d9e0f2a4c6e8b0d1f3a5c7e9b2d"),
        item(3, "BOX-ARCH-0077", EDU, "education.pupil_record", "delete", manual=True,
             systems=("paper archive, room B2",), method="destroyed by hand",
             verification="confirmed by a.officer with evidence of destruction",
             approved_by=("a.approver",),
             evidence=Evidence(destroyed_by="Shred-It Synthetic Ltd",
                               destroyed_on=dt.date(2026, 11, 20), method="cross-cut shredding",
                               certificate_no="SH-2026-1182", confirmed_by="a.officer",
                               confirmed_at=T)),
        item(4, "REF-2020-00031", REF, "safeguarding.referral", "delete", systems=("case-db",),
             method="deleted 1 row (referrals 1) in one transaction",
             verification="case-db.exists() is false after the delete",
             approved_by=("a.approver", "b.approver"), approver_roles=("approver", "approver")),
    ]
    doc = build_document(
        serial="SCH-01-000002", sequence=2, batch="daily-2026-11-22", issued_at=T + dt.timedelta(hours=1),
        issuer=ISSUER, issuer_contact="ig@la01.example", controller_code="SCH-01",
        controller_name="Synthetic Primary School One",
        agreements=[AgreementFacts(code="ISA-2024-07",
                                   title="Pupil and safeguarding data sharing agreement")],
        items=items, categories={"education.pupil_record": "Education data",
                                 "safeguarding.referral": "Safeguarding referral"},
        previous=ChainLink(serial="SCH-01-000001", sequence=1,
                           sha256="3b7e1f0c2d4a6b8c0e2f4a6c8e0b2d4f6a8c0e2b4d6f8a0c2e4b6d8f0a2c4e6b"),
        audit_head=(1842, "c0ffee0ddba11c0ffee0ddba11c0ffee0ddba11c0ffee0ddba11c0ffee0ddba1"),
        software="retentiond 0.1.0",
        # What the holding systems declare remains (each connector's configuration states it).
        remaining_copies=[
            {"system": "pupil-mis", "what": "backup copies", "expire_by": "2026-12-27"},
            {"system": "case-db", "what": "backup copies", "expire_by": "2026-12-27"},
        ],
    )
    signed = sign_document(doc, jwk=signer.jwk, kid=signer.kid, chain_der=signer.jws_chain_der)
    pdf = sign_pdf(render_pdf(doc, signed, kid=signer.kid, sha256=document_hash(doc)), signer,
                   serial=doc["serial"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "SCH-01-000002.pdf").write_bytes(pdf)
    (out / "SCH-01-000002.json").write_text(signed)
    return out / "SCH-01-000002.pdf"


if __name__ == "__main__":
    print(main(Path(sys.argv[1] if len(sys.argv) > 1 else "sample")))
