"""The signed JSON certificate: numbered parts, each a JWS (RFC 7515) in the flattened JSON
serialisation, gathered in one file.

Each part's payload is the certificate with a share of its records and a ``part`` member
(``number``, ``of``, and ``certificate_sha256``: the SHA-256 of the whole certificate's
canonical form, without ``part``, with every record). A part's payload stays under
:data:`PART_MAX_BYTES`, so that every common JOSE library accepts it with its default limits
(joserfc refuses a payload segment over 128,000 characters, a protected header over 512).

Protected header: ``alg`` Ed25519 (RFC 9864), ``kid`` (the key's RFC 7638 thumbprint),
``typ``. Unprotected header: ``x5c`` (the key's certificate and the CA certificate), so that
the signature can be checked with the CA certificate alone; it needs no protection, since the
CA's signature vouches for it and the protected ``kid`` must be its key's thumbprint.

The file (``SERIAL.json``)::

    {"type": "retentiond.disposal-certificate+jws", "serial": ..., "sha256": ...,
     "parts": [{"protected": ..., "header": {"x5c": [...]}, "payload": ..., "signature": ...}]}

``serial`` and ``sha256`` there are for people; verification trusts only the signed parts.
Certificates of version 1 (one flattened JWS, ``alg`` EdDSA) still verify.

Verification says exactly what is wrong (:class:`VerificationFailure.kind`):

- ``malformed``: not a JWS certificate at all;
- ``wrong_key``: signed with a key the verifier was not given (another key id, or a key whose
  certificate the given CA did not issue);
- ``altered``: the signature does not match the content (changed after signing), or parts
  are missing, repeated or from different certificates;
- ``inconsistent``: signed, but the content contradicts itself (totals, chain fields);
- ``broken_chain``: the previous certificate given is not the one this one names.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization

from retentiond.certificates.document import canonical, check_consistency, document_hash

ALG = "Ed25519"
#: Algorithm names accepted on verification: RFC 9864's Ed25519, and RFC 8037's EdDSA that
#: certificates of version 1 were signed with.
ACCEPTED_ALGS = ("Ed25519", "EdDSA")
TYP = "retentiond-certificate+jws"
FILE_TYPE = "retentiond.disposal-certificate+jws"
#: The most bytes of one part's payload: its base64url segment (4/3 of it, 85,334
#: characters) stays well under joserfc's default limit of 128,000.
PART_MAX_BYTES = 64_000


class VerificationFailure(Exception):
    """A certificate did not verify; ``kind`` says how, the message says exactly what."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, kw_only=True)
class Verified:
    """A certificate whose signature checked out (every part of it)."""

    #: The whole certificate: its parts put together, without ``part``.
    doc: dict[str, Any]
    header: dict[str, Any]
    kid: str
    #: SHA-256 of the whole certificate's canonical form: what the next certificate names as
    #: previous (for a version 1 certificate: of its signed payload, the same thing).
    sha256: str
    #: How the key was found: ``jwks`` or ``ca``.
    key_source: str
    signer_subject: str | None
    parts: int = 1


@contextmanager
def _quiet() -> Iterator[None]:
    # joserfc warns that RFC 9864 deprecates the name "EdDSA": certificates of version 1 were
    # signed under it, and still verify.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*EdDSA.*")
        yield


def _registry() -> Any:
    """joserfc's registry with its default size limits: a certificate that needs them raised
    would fail a controller's default library too. Version 1 certificates (``x5c`` in the
    protected header, one payload for every record) need more (:func:`_legacy_registry`)."""
    from joserfc.jws import JWSRegistry

    return JWSRegistry(algorithms=list(ACCEPTED_ALGS))


def _legacy_registry() -> Any:
    from joserfc.jws import JWSRegistry

    registry = JWSRegistry(algorithms=list(ACCEPTED_ALGS))
    registry.max_header_length = 64 * 1024
    registry.max_payload_length = 256 * 1024 * 1024
    return registry


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def split_records(doc: dict[str, Any], *, max_bytes: int = PART_MAX_BYTES) -> list[list[Any]]:
    """The records in consecutive runs, each making a part payload of at most ``max_bytes``
    (a single record larger than that is refused: no JOSE library would take its part)."""
    shell = dict(doc, records=[], part={"number": 10**6, "of": 10**6,
                                        "certificate_sha256": "0" * 64})
    base = len(canonical(shell))
    runs: list[list[Any]] = [[]]
    size = base
    for record in doc["records"]:
        cost = len(canonical(record)) + 1
        if base + cost > max_bytes:
            raise ValueError(f"record {record.get('record')} alone is {cost} bytes: more than "
                             f"a certificate part may hold ({max_bytes})")
        if runs[-1] and size + cost > max_bytes:
            runs.append([])
            size = base
        runs[-1].append(record)
        size += cost
    return runs


def part_documents(doc: dict[str, Any], *, max_bytes: int = PART_MAX_BYTES) -> list[dict[str, Any]]:
    """The payloads of the certificate's parts, in order."""
    whole = document_hash(doc)
    runs = split_records(doc, max_bytes=max_bytes)
    return [dict(doc, records=run, part={"number": n, "of": len(runs),
                                         "certificate_sha256": whole})
            for n, run in enumerate(runs, start=1)]


def sign_document(doc: dict[str, Any], *, jwk: dict[str, Any], kid: str,
                  chain_der: tuple[bytes, ...], max_bytes: int = PART_MAX_BYTES) -> str:
    """The signed certificate file: every part signed, as a JSON text."""
    from joserfc import jws
    from joserfc.jwk import OKPKey

    key = OKPKey.import_key({k: v for k, v in jwk.items() if k != "alg"})
    x5c = [base64.b64encode(d).decode() for d in chain_der]
    parts = []
    for part in part_documents(doc, max_bytes=max_bytes):
        signed: Any = jws.serialize_json(
            {"protected": {"alg": ALG, "kid": kid, "typ": TYP}, "header": {"x5c": x5c}},
            canonical(part), key, algorithms=[ALG], registry=_registry())
        parts.append({"protected": signed["protected"], "header": signed["header"],
                      "payload": signed["payload"], "signature": signed["signature"]})
    out = {"type": FILE_TYPE, "serial": doc["serial"], "sha256": document_hash(doc),
           "parts": parts}
    return json.dumps(out, indent=1) + "\n"


def _flat(obj: Any) -> dict[str, Any]:
    if isinstance(obj, str) and obj.count(".") == 2:  # a compact JWS in a JSON string
        p, pl, s = obj.split(".")
        obj = {"protected": p, "payload": pl, "signature": s}
    if not isinstance(obj, dict) or not all(
            isinstance(obj.get(k), str) for k in ("payload", "protected", "signature")):
        raise VerificationFailure(
            "malformed", "not a signed certificate: expected a JWS object with payload, "
            "protected and signature")
    flat = {k: obj[k] for k in ("payload", "protected", "signature")}
    if isinstance(obj.get("header"), dict):
        flat["header"] = obj["header"]
    return flat


def parse_file(text: str | bytes) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    """The flattened JWS objects a certificate file holds, and the file's own (unsigned)
    wrapper when it is a file of parts."""
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VerificationFailure("malformed", f"not JSON: {exc}") from exc
    if isinstance(obj, dict) and "parts" in obj:
        if not isinstance(obj["parts"], list) or not obj["parts"]:
            raise VerificationFailure("malformed", "the certificate file lists no parts")
        return [_flat(p) for p in obj["parts"]], obj
    return [_flat(obj)], None


def parse(flat: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
    """One JWS object's header (protected, with the unprotected members it may have) and
    payload bytes."""
    try:
        header = json.loads(_b64url_decode(flat["protected"]))
        payload = _b64url_decode(flat["payload"])
    except (ValueError, json.JSONDecodeError) as exc:
        raise VerificationFailure("altered", f"the protected header or payload is damaged "
                                  f"(not valid base64url JSON): {exc}") from exc
    if not isinstance(header, dict):
        raise VerificationFailure("altered", "the protected header is not a JSON object")
    unprotected = flat.get("header") or {}
    return {**{k: v for k, v in unprotected.items() if k == "x5c"}, **header}, payload


def _ca_key(header: dict[str, Any], ca_pem: bytes, kid: str,
            signed_at: dt.datetime | None) -> tuple[dict[str, Any], str]:
    from joserfc.jwk import OKPKey

    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as exc:
        raise VerificationFailure("malformed", f"the CA file is not a PEM certificate: {exc}") from exc
    chain = header.get("x5c")
    if not isinstance(chain, list) or not chain:
        raise VerificationFailure("wrong_key", "the certificate carries no x5c key certificate, "
                                  "so it cannot be checked with a CA: use --jwks")
    try:
        leaf = x509.load_der_x509_certificate(base64.b64decode(chain[0]))
    except ValueError as exc:
        raise VerificationFailure("altered", f"the x5c key certificate is damaged: {exc}") from exc
    try:
        leaf.verify_directly_issued_by(ca)
    except (ValueError, TypeError, InvalidSignature):
        raise VerificationFailure(
            "wrong_key", f"signed with a key certified by '{leaf.issuer.rfc4514_string()}', "
            f"not by the CA you gave ('{ca.subject.rfc4514_string()}')") from None
    if signed_at is not None and not (
            leaf.not_valid_before_utc <= signed_at <= leaf.not_valid_after_utc):
        raise VerificationFailure(
            "wrong_key", f"the signing key's certificate was not valid at the time of issue "
            f"{signed_at.isoformat()} (valid {leaf.not_valid_before_utc.isoformat()} to "
            f"{leaf.not_valid_after_utc.isoformat()})")
    key = OKPKey.import_key(leaf.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    if key.thumbprint() != kid:
        raise VerificationFailure("altered", f"the header's key id {kid} is not the "
                                  "thumbprint of the key its certificate certifies")
    return key.as_dict(private=False), leaf.subject.rfc4514_string()


def _issued_at(payload: bytes) -> dt.datetime | None:
    try:
        doc = json.loads(payload)
        return dt.datetime.fromisoformat(doc["issued_at"].replace("Z", "+00:00"))
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def _verify_part(flat: dict[str, Any], *, jwks: dict[str, Any] | None,
                 ca_pem: bytes | None) -> tuple[dict[str, Any], bytes, str, str | None]:
    """Check one part's signature: (header, payload, key source, signer subject)."""
    from joserfc import jws
    from joserfc.errors import ExceededSizeError, JoseError
    from joserfc.jwk import OKPKey

    header, payload = parse(flat)
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ACCEPTED_ALGS:
        raise VerificationFailure("wrong_key", f"signed with algorithm {alg!r}; certificates are "
                                  f"signed with {ALG}")
    if not isinstance(kid, str):
        raise VerificationFailure("malformed", "the signature header names no key id (kid)")
    signer_subject = None
    if jwks is not None:
        keys = [k for k in jwks.get("keys", []) if isinstance(k, dict)]
        match = [k for k in keys if k.get("kid") == kid]
        if not match:
            have = ", ".join(str(k.get("kid")) for k in keys) or "none"
            raise VerificationFailure("wrong_key", f"signed with key id {kid}; the key set you "
                                      f"gave holds {have}")
        jwk, source = match[0], "jwks"
    else:
        assert ca_pem is not None
        jwk, signer_subject = _ca_key(header, ca_pem, kid, _issued_at(payload))
        source = "ca"
    try:
        # Without "alg": a key published as EdDSA checks an Ed25519 signature (the same
        # key, two names), and the reverse.
        key = OKPKey.import_key({k: v for k, v in jwk.items() if k not in ("d", "alg")})
    except (JoseError, ValueError, TypeError) as exc:
        raise VerificationFailure("wrong_key", f"key {kid} in the key set is not an Ed25519 "
                                  f"key: {exc}") from exc
    legacy = "header" not in flat
    try:
        with _quiet():
            obj: Any = flat
            jws.deserialize_json(obj, key, algorithms=list(ACCEPTED_ALGS),
                                 registry=_legacy_registry() if legacy else _registry())
    except ExceededSizeError as exc:
        raise VerificationFailure("malformed", f"the certificate is too large to check: {exc}") from exc
    except JoseError:
        raise VerificationFailure(
            "altered", f"the signature does not match the content: the certificate was changed "
            f"after it was signed (or was signed by another key claiming id {kid})") from None
    return header, payload, source, signer_subject


def _payload_doc(payload: bytes) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise VerificationFailure("inconsistent", f"the signed payload is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise VerificationFailure("inconsistent", "the signed payload is not a JSON object")
    return doc


def _assemble(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], str]:
    """The whole certificate from its signed parts, and its SHA-256; refuses missing,
    repeated or mixed parts."""
    parts: list[dict[str, Any]] = []
    for d in docs:
        p = d.get("part")
        if not isinstance(p, dict) or not all(isinstance(p.get(k), int) for k in ("number", "of")):
            raise VerificationFailure("altered", "a signed part does not say which part it is")
        parts.append(p)
    n, whole_sha = parts[0]["of"], parts[0].get("certificate_sha256")
    if any(p["of"] != n or p.get("certificate_sha256") != whole_sha for p in parts):
        raise VerificationFailure("altered", "the parts given are not all parts of one "
                                  "certificate")
    numbers = sorted(p["number"] for p in parts)
    if numbers != list(range(1, n + 1)):
        missing = sorted(set(range(1, n + 1)) - set(numbers))
        raise VerificationFailure(
            "altered", f"the certificate has {n} part(s); the file holds part(s) "
            f"{', '.join(map(str, numbers))}" + (f": part(s) {', '.join(map(str, missing))} "
                                                 "missing" if missing else ""))
    ordered = sorted(docs, key=lambda d: d["part"]["number"])
    shells = [{k: v for k, v in d.items() if k not in ("part", "records")} for d in ordered]
    if any(s != shells[0] for s in shells):
        raise VerificationFailure("altered", "the parts disagree about the certificate they "
                                  "belong to")
    records: list[Any] = []
    for d in ordered:
        if not isinstance(d.get("records"), list):
            raise VerificationFailure("inconsistent", "a part's records are not a list")
        records.extend(d["records"])
    whole = dict(shells[0], records=records)
    sha = document_hash(whole)
    if sha != whole_sha:
        raise VerificationFailure("altered", f"the parts put together have SHA-256 {sha}, not "
                                  f"the {whole_sha} each part names")
    return whole, sha


def verify_jws(text: str | bytes, *, jwks: dict[str, Any] | None = None,
               ca_pem: bytes | None = None) -> Verified:
    """Check a signed certificate file (every part) with a public key set or a CA certificate
    (one is needed)."""
    if jwks is None and ca_pem is None:
        raise VerificationFailure("malformed", "give the public key set (--jwks) or the CA "
                                  "certificate (--ca) to check the signature with")
    flats, wrapper = parse_file(text)
    checked = [_verify_part(f, jwks=jwks, ca_pem=ca_pem) for f in flats]
    header, _payload, source, subject = checked[0]
    kids = {h.get("kid") for h, *_ in checked}
    if len(kids) > 1:
        raise VerificationFailure("altered", "the parts are signed with different keys")
    docs = [_payload_doc(p) for _h, p, *_ in checked]
    if "part" in docs[0] or len(docs) > 1:
        doc, sha = _assemble(docs)
    else:
        doc, sha = docs[0], hashlib.sha256(checked[0][1]).hexdigest()
    if wrapper is not None and (wrapper.get("serial"), wrapper.get("sha256")) != (
            doc.get("serial"), sha):
        raise VerificationFailure("altered", f"the file says it is {wrapper.get('serial')} "
                                  f"with SHA-256 {wrapper.get('sha256')}, but its signed parts "
                                  f"are {doc.get('serial')} with SHA-256 {sha}")
    problems = check_consistency(doc)
    if problems:
        raise VerificationFailure("inconsistent", "signed, but inconsistent: " + "; ".join(problems))
    return Verified(doc=doc, header=header, kid=str(header["kid"]), sha256=sha,
                    key_source=source, signer_subject=subject, parts=len(docs))


def check_chain(current: Verified, previous: Verified) -> None:
    """Check that ``previous`` is the certificate ``current`` names as the one before it."""
    doc, prev = current.doc, previous.doc
    named = doc.get("previous")
    if doc.get("controller", {}).get("code") != prev.get("controller", {}).get("code"):
        raise VerificationFailure(
            "broken_chain", f"the previous certificate is for controller "
            f"{prev.get('controller', {}).get('code')}, this one for "
            f"{doc.get('controller', {}).get('code')}")
    if named is None:
        raise VerificationFailure("broken_chain", f"{doc.get('serial')} is the first of its "
                                  "chain: it names no previous certificate")
    if named.get("sha256") != previous.sha256:
        gap = ""
        if isinstance(doc.get("sequence"), int) and isinstance(prev.get("sequence"), int) \
                and doc["sequence"] - prev["sequence"] != 1:
            gap = (f"; numbers {prev['sequence']} and {doc['sequence']} are not consecutive: "
                   f"{doc['sequence'] - prev['sequence'] - 1} certificate(s) between them are "
                   "missing" if doc["sequence"] > prev["sequence"] else "")
        raise VerificationFailure(
            "broken_chain", f"{doc.get('serial')} names previous certificate "
            f"{named.get('serial')} with SHA-256 {named.get('sha256')}, but the file given as "
            f"previous is {prev.get('serial')} with SHA-256 {previous.sha256}{gap}")
    if doc.get("sequence") != prev.get("sequence", -1) + 1:
        raise VerificationFailure("broken_chain", f"sequence {doc.get('sequence')} does not follow "
                                  f"{prev.get('sequence')}")
