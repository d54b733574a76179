"""``python -m bench.certificates``: how long one certificate takes to make, by its size.

Builds certificates of ``--rows`` records each (synthetic: record references, rules,
methods and checks like the executor's) and times, separately, the signed document
(``build_document`` and the Ed25519 JWS), the PDF (``render_pdf``) and its PAdES signature
(``sign_pdf``), the steps ``issue_certificates`` takes for each certificate beside its
database work. Prints wall and CPU seconds per certificate for each size as JSON.

    .venv/bin/python -m bench.certificates --rows 3 1000 --repeat 20 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from retentiond.certificates.document import AgreementFacts, ItemFacts, build_document, document_hash
from retentiond.certificates.jws import sign_document
from retentiond.certificates.keys import init_keys, load_signer
from retentiond.certificates.pdf import render_pdf, sign_pdf
from retentiond.certificates.settings import CertificateSettings

ISSUER = "Synthetic Borough Council"
T = dt.datetime(2026, 11, 22, 10, 30, tzinfo=dt.UTC)
RULES = [
    ("isa.education.pupil_record", "education.pupil_record",
     "Education data: until the subject's 25th birthday"),
    ("isa.safeguarding.referral", "safeguarding.referral",
     "Safeguarding referral: 6 years after the report"),
    ("la.looked_after.case_record", "looked_after.case_record",
     "Looked-after child's case record: 75 years after birth"),
]


def _items(n: int) -> list[ItemFacts]:
    out = []
    for i in range(n):
        rule, category, title = RULES[i % len(RULES)]
        out.append(ItemFacts(
            disposal_id=1000 + i, record=f"REC-{2019 + i % 5}-{i:07d}", category=category,
            agreement="ISA-2024-07", rule_id=rule, rule_title=title,
            citation=f"ISA 'Effective Sharing of Educational Indicators', {title.lower()}",
            policy_version="b604b140d3f3d278", action="delete", manual=False,
            method="deleted 4 rows (case_files 1, case_notes 3) in one transaction",
            verification="holding.exists() is false after the delete", systems=("holding",),
            package_sha256=None, evidence=None, executed_at=T + dt.timedelta(seconds=i),
            approved_by=("a.approver",) if i % 7 else ("a.approver", "b.approver"),
            approver_roles=("approver",) if i % 7 else ("approver", "approver")))
    return out


def _doc(n: int, serial: str) -> dict[str, Any]:
    return build_document(
        serial=serial, sequence=2, batch="daily-2026-11-22", issued_at=T + dt.timedelta(hours=1),
        issuer=ISSUER, issuer_contact="ig@la01.example", controller_code="LA-01",
        controller_name="Synthetic Borough Council children's services",
        agreements=[AgreementFacts(code="ISA-2024-07", title="Data sharing agreement")],
        items=_items(n), categories={c: t.split(":")[0] for _r, c, t in RULES},
        previous=None, audit_head=(1842, "c0ffee0d" * 8), software="retentiond bench",
        remaining_copies=[{"system": "holding", "what": "backup copies",
                           "expire_by": "2026-12-27"}])


def run(rows: list[int], repeats: list[int]) -> dict[str, Any]:
    keys = Path(tempfile.mkdtemp(prefix="retentiond-bench-keys-")) / "keys"
    init_keys(keys, issuer=ISSUER, now=T - dt.timedelta(days=30))
    signer = load_signer(CertificateSettings(where="bench", issuer=ISSUER,
                                             issuer_contact="ig@la01.example", key_dir=keys,
                                             batch="daily", files={}))
    out: dict[str, Any] = {"load_average_at_start": os.getloadavg()}
    for n, repeat in zip(rows, repeats, strict=True):
        wall = {"document": 0.0, "render": 0.0, "sign": 0.0}
        cpu = dict(wall)
        size = 0
        for r in range(repeat):
            marks = [(time.perf_counter(), time.process_time())]
            doc = _doc(n, f"LA-01-{r:06d}")
            signed = sign_document(doc, jwk=signer.jwk, kid=signer.kid,
                                   chain_der=signer.jws_chain_der)
            marks.append((time.perf_counter(), time.process_time()))
            pdf = render_pdf(doc, signed, kid=signer.kid, sha256=document_hash(doc))
            marks.append((time.perf_counter(), time.process_time()))
            pdf = sign_pdf(pdf, signer, serial=doc["serial"])
            marks.append((time.perf_counter(), time.process_time()))
            for key, (a, b) in zip(wall, itertools.pairwise(marks), strict=True):
                wall[key] += b[0] - a[0]
                cpu[key] += b[1] - a[1]
            size = len(pdf)
        out[f"rows_{n}"] = {
            "certificates": repeat, "pdf_bytes": size,
            "wall_s_each": {k: round(v / repeat, 4) for k, v in wall.items()},
            "cpu_s_each": {k: round(v / repeat, 4) for k, v in cpu.items()},
            "total_wall_s_each": round(sum(wall.values()) / repeat, 4),
        }
    out["load_average_at_end"] = os.getloadavg()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[3, 1000])
    parser.add_argument("--repeat", type=int, nargs="+", default=[20, 2])
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if len(args.repeat) != len(args.rows):
        parser.error("--repeat needs one number for each --rows")
    result = run(args.rows, args.repeat)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
