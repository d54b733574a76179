"""Certificates any JOSE library checks: a 1,000-record certificate in numbered parts, each
within joserfc's default limits, verified by joserfc, jwcrypto and Node's jose (the examples in
docs/certificates.md, as written); parts missing, repeated or mixed are refused; certificates
of version 1 (one EdDSA JWS) still verify."""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from cert_support import executed, make_keys, settings_for, signer_for
from int_support import pupil, seed_controllers
from notify_support import doc_block
from sqlalchemy import select

from retentiond.certificates import issue_certificates
from retentiond.certificates.document import canonical, document_hash
from retentiond.certificates.jws import PART_MAX_BYTES, verify_jws
from retentiond.certificates.keys import publish
from retentiond.certificates.verify import load_jwks, verify_bytes
from retentiond.registry import models as m

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "certificates.md"
NODE_MODULES = ROOT / "tests" / "oidc_provider" / "node_modules"
HEADING = "### Checking the JSON with a JOSE library"


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test signing keys."""
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def public(keys: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The published jwks.json and ca.pem, in a folder."""
    out = tmp_path_factory.mktemp("public")
    publish(settings_for(keys), out)
    return out


@pytest.fixture(scope="module")
def big(sqlite_template, keys, tmp_path_factory) -> m.Certificate:
    """One certificate of 1,000 executed disposals (real SQLite registry)."""
    from conftest import DEFAULT_PACK, FixedClock

    from retentiond.lifecycle.context import Context
    from retentiond.policy import load_policy_set
    from retentiond.registry.db import make_engine, session_factory

    tmp = tmp_path_factory.mktemp("big")
    shutil.copy(sqlite_template, tmp / "registry.db")
    engine = make_engine(f"sqlite:///{tmp / 'registry.db'}")
    ctx = Context(sessions=session_factory(engine), policy=load_policy_set([DEFAULT_PACK]),
                  actor="officer.one", clock=FixedClock(dt.datetime(2026, 11, 22, 12, tzinfo=dt.UTC)))
    seed_controllers(ctx, tmp)
    executed(ctx, tmp, [pupil(f"PUP-2001-{n:05d}", "2001-01-01", system="mis")
                        for n in range(1000)])
    [issued] = issue_certificates(ctx, signer_for(keys), batch="run")
    assert issued.records == 1000
    with ctx.sessions() as session:
        cert = session.scalars(select(m.Certificate)).one()
        session.expunge(cert)
    engine.dispose()
    return cert


def test_a_thousand_records_are_signed_in_parts_within_default_limits(big, public):
    """Several parts; each payload and protected header within joserfc's defaults; each part
    verifies with joserfc's default registry (no limits raised)."""
    from joserfc import jws
    from joserfc.jwk import KeySet

    signed = json.loads(big.jws)
    assert signed["serial"] == big.serial and signed["sha256"] == big.sha256
    parts = signed["parts"]
    assert len(parts) > 1
    keyset = KeySet.import_key_set(json.loads((public / "jwks.json").read_text()))
    numbers = []
    for part in parts:
        assert len(part["payload"]) < 128_000 and len(part["protected"]) < 512
        assert len(base64.urlsafe_b64decode(part["payload"] + "==")) <= PART_MAX_BYTES
        header = json.loads(base64.urlsafe_b64decode(part["protected"] + "=="))
        assert header["alg"] == "Ed25519" and "x5c" in part["header"]
        obj = jws.deserialize_json(part, keyset, algorithms=["Ed25519"])  # default registry
        doc = json.loads(obj.payload)
        numbers.append(doc["part"]["number"])
        assert doc["part"]["of"] == len(parts) and doc["part"]["certificate_sha256"] == big.sha256
    assert numbers == list(range(1, len(parts) + 1))
    report = verify_bytes(big.jws.encode(), jwks=load_jwks((public / "jwks.json").read_bytes(), "j"))
    assert report.ok and report.records == 1000 and report.sha256 == big.sha256
    assert f"({len(parts)} parts, all present)" in " ".join(report.checks)
    assert verify_bytes(big.pdf, ca_pem=(public / "ca.pem").read_bytes()).ok
    assert document_hash(big.document) == big.sha256


def test_the_documented_jwcrypto_check_verifies_every_part(big, public, tmp_path):
    """docs/certificates.md's Python example (jwcrypto, an independent library) returns the
    whole certificate, and refuses it with one part's payload changed."""
    namespace: dict = {}
    exec(doc_block(DOCS, HEADING, "python"), namespace)
    check = namespace["checked_certificate"]
    path = tmp_path / f"{big.serial}.json"
    path.write_text(big.jws)
    whole = check(str(path), str(public / "jwks.json"))
    assert whole == json.loads(canonical(big.document))
    assert len(whole["records"]) == 1000

    from jwcrypto.common import JWException

    signed = json.loads(big.jws)
    doc = json.loads(base64.urlsafe_b64decode(signed["parts"][1]["payload"] + "=="))
    doc["records"].pop()
    signed["parts"][1]["payload"] = base64.urlsafe_b64encode(canonical(doc)).decode().rstrip("=")
    path.write_text(json.dumps(signed))
    with pytest.raises(JWException):
        check(str(path), str(public / "jwks.json"))


def test_the_documented_node_jose_check_verifies_every_part(big, public, tmp_path):
    """docs/certificates.md's Node.js example (panva's jose) verifies each part; a changed
    part makes it fail."""
    if shutil.which("node") is None or not (NODE_MODULES / "jose").is_dir():
        reason = "node or the jose package (./dev test installs it) is missing"
        if os.environ.get("RETENTIOND_REQUIRE_NODE") == "1":
            pytest.fail(reason + " (RETENTIOND_REQUIRE_NODE=1)")
        pytest.skip(reason)
    (tmp_path / "node_modules").symlink_to(NODE_MODULES)
    (tmp_path / "check.mjs").write_text(doc_block(DOCS, HEADING, "js"))
    (tmp_path / "cert.json").write_text(big.jws)
    run = subprocess.run(["node", "check.mjs", "cert.json", str(public / "jwks.json")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    n = len(json.loads(big.jws)["parts"])
    assert len(lines) == n and lines[-1].startswith(f"{big.serial} part {n} of {n}: ")
    assert sum(int(line.split(": ")[1].split()[0]) for line in lines) == 1000

    signed = json.loads(big.jws)
    signed["parts"][0]["signature"] = signed["parts"][1]["signature"]
    (tmp_path / "cert.json").write_text(json.dumps(signed))
    run = subprocess.run(["node", "check.mjs", "cert.json", str(public / "jwks.json")],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode != 0 and "signature verification failed" in run.stderr


def _mutated(big: m.Certificate, change) -> bytes:
    signed = json.loads(big.jws)
    change(signed)
    return json.dumps(signed).encode()


@pytest.mark.parametrize(("change", "words"), [
    (lambda s: s["parts"].pop(1), "part(s) 2 missing"),
    (lambda s: s["parts"].__setitem__(1, s["parts"][0]), "part(s) 2 missing"),
    (lambda s: s.update(parts=s["parts"][:1]), "missing"),
    (lambda s: s.update(serial="SCH-01-999999"), "the file says it is SCH-01-999999"),
    (lambda s: s.update(sha256="0" * 64), "the file says it is"),
])
def test_parts_missing_repeated_or_mislabelled_are_altered(big, public, change, words):
    """A part removed, a part given twice, one part alone, or the unsigned wrapper naming
    another certificate: ALTERED, saying what."""
    report = verify_bytes(_mutated(big, change), ca_pem=(public / "ca.pem").read_bytes())
    assert (report.ok, report.kind) == (False, "altered"), report.message
    assert words in report.message


def test_parts_in_another_order_still_verify(big, public):
    """The parts are numbered: their order in the file does not matter."""
    data = _mutated(big, lambda s: s["parts"].reverse())
    report = verify_bytes(data, ca_pem=(public / "ca.pem").read_bytes())
    assert report.ok and report.sha256 == big.sha256


def test_a_part_of_another_certificate_is_refused(big, keys, public):
    """A genuinely signed part of another certificate swapped in: the parts do not belong
    together (ALTERED), though each signature is good."""
    from retentiond.certificates.jws import sign_document

    signer = signer_for(keys)
    other = dict(big.document, serial="SCH-01-000777")
    foreign = json.loads(sign_document(other, jwk=signer.jwk, kid=signer.kid,
                                       chain_der=signer.jws_chain_der))["parts"][1]
    data = _mutated(big, lambda s: s["parts"].__setitem__(1, foreign))
    report = verify_bytes(data, jwks=load_jwks((public / "jwks.json").read_bytes(), "j"))
    assert (report.ok, report.kind) == (False, "altered")
    assert "not all parts of one certificate" in report.message


def test_a_version_1_certificate_still_verifies(keys, public):
    """A certificate as version 1 signed it (one flattened JWS, alg EdDSA, x5c protected,
    a payload over joserfc's default limit) verifies with the key set and with the CA."""
    import warnings

    from joserfc import jws
    from joserfc.jwk import OKPKey
    from joserfc.jws import JWSRegistry

    signer = signer_for(keys)
    records = [{"record": f"PUP-{n:05d}", "category": "education.pupil_record",
                "action": "deleted", "due_on": "2026-11-01", "padding": "x" * 200}
               for n in range(600)]
    doc = {"type": "retentiond.disposal-certificate", "version": 1, "serial": "SCH-01-000001",
           "sequence": 1, "issued_at": "2026-11-22T12:00:00Z", "previous": None,
           "controller": {"code": "SCH-01"}, "records": records,
           "totals": {"records": 600, "by_action": {"deleted": 600},
                      "by_category": {"education.pupil_record": 600}}}
    registry = JWSRegistry(algorithms=["EdDSA"])
    registry.max_header_length = registry.max_payload_length = 10**8
    header = {"alg": "EdDSA", "kid": signer.kid, "typ": "retentiond-certificate+jws",
              "x5c": [base64.b64encode(d).decode() for d in signer.jws_chain_der]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        key = OKPKey.import_key({**signer.jwk, "alg": "EdDSA"})
        raw = jws.serialize_json({"protected": header}, canonical(doc), key,
                                 algorithms=["EdDSA"], registry=registry)
    text = json.dumps({k: raw[k] for k in ("payload", "protected", "signature")})
    assert len(raw["payload"]) > 128_000
    for kw in ({"jwks": load_jwks((public / "jwks.json").read_bytes(), "j")},
               {"ca_pem": (public / "ca.pem").read_bytes()}):
        verified = verify_jws(text, **kw)
        assert verified.doc["serial"] == "SCH-01-000001" and verified.parts == 1
        assert verified.sha256 == document_hash(doc)
