"""The signed JSON certificate: a JWS (RFC 7515) in the flattened JSON serialisation.

Header: ``alg`` EdDSA (Ed25519), ``kid`` (the key's RFC 7638 thumbprint), ``typ``, and ``x5c``
(the key's certificate and the CA certificate), so that the signature can be checked with
the published key set (``jwks.json``) or with the CA certificate alone.

Verification says exactly what is wrong (:class:`VerificationFailure.kind`):

- ``malformed``: not a JWS certificate at all;
- ``wrong_key``: signed with a key the verifier was not given (another key id, or a key whose
  certificate the given CA did not issue);
- ``altered``: the signature does not match the content (changed after signing);
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

from retentiond.certificates.document import canonical, check_consistency

ALG = "EdDSA"
#: Algorithm names accepted on verification: RFC 8037's EdDSA and RFC 9864's Ed25519.
ACCEPTED_ALGS = ("EdDSA", "Ed25519")
TYP = "retentiond-certificate+jws"


class VerificationFailure(Exception):
    """A certificate did not verify; ``kind`` says how, the message says exactly what."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(frozen=True, kw_only=True)
class Verified:
    """A certificate whose signature checked out."""

    doc: dict[str, Any]
    header: dict[str, Any]
    kid: str
    #: SHA-256 of the signed payload: what the next certificate names as previous.
    sha256: str
    #: How the key was found: ``jwks`` or ``ca``.
    key_source: str
    signer_subject: str | None


@contextmanager
def _quiet() -> Iterator[None]:
    # joserfc warns that RFC 9864 deprecates the name "EdDSA"; we keep it on purpose because
    # it is the name every JOSE library a controller may use understands.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*EdDSA.*")
        yield


def _registry() -> Any:
    """joserfc's registry with room for our header (``x5c`` holds two certificates) and for
    certificates of many records (its defaults are 512 bytes and 128 kB)."""
    from joserfc.jws import JWSRegistry

    registry = JWSRegistry(algorithms=list(ACCEPTED_ALGS))
    registry.max_header_length = 64 * 1024
    registry.max_payload_length = 256 * 1024 * 1024
    return registry


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign_document(doc: dict[str, Any], *, jwk: dict[str, Any], kid: str,
                  chain_der: tuple[bytes, ...]) -> str:
    """The JWS of the document's canonical form, as a JSON text (flattened serialisation)."""
    from joserfc import jws
    from joserfc.jwk import OKPKey

    header = {"alg": ALG, "kid": kid, "typ": TYP,
              "x5c": [base64.b64encode(d).decode() for d in chain_der]}
    with _quiet():
        signed = jws.serialize_json({"protected": header}, canonical(doc), OKPKey.import_key(jwk),
                                    algorithms=[ALG], registry=_registry())
    raw: Any = signed
    flat = {"payload": raw["payload"], "protected": raw["protected"],
            "signature": raw["signature"]}
    return json.dumps(flat, indent=2) + "\n"


def parse(text: str | bytes) -> tuple[dict[str, str], dict[str, Any], bytes]:
    """The flattened JWS object, its protected header and its payload bytes."""
    try:
        obj = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise VerificationFailure("malformed", f"not JSON: {exc}") from exc
    if isinstance(obj, str) and obj.count(".") == 2:  # a compact JWS in a JSON string
        p, pl, s = obj.split(".")
        obj = {"protected": p, "payload": pl, "signature": s}
    if not isinstance(obj, dict) or not all(
            isinstance(obj.get(k), str) for k in ("payload", "protected", "signature")):
        raise VerificationFailure(
            "malformed", "not a signed certificate: expected a JWS object with payload, "
            "protected and signature")
    try:
        header = json.loads(_b64url_decode(obj["protected"]))
        payload = _b64url_decode(obj["payload"])
    except (ValueError, json.JSONDecodeError) as exc:
        raise VerificationFailure("altered", f"the protected header or payload is damaged "
                                  f"(not valid base64url JSON): {exc}") from exc
    if not isinstance(header, dict):
        raise VerificationFailure("altered", "the protected header is not a JSON object")
    return {k: obj[k] for k in ("payload", "protected", "signature")}, header, payload


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


def verify_jws(text: str | bytes, *, jwks: dict[str, Any] | None = None,
               ca_pem: bytes | None = None) -> Verified:
    """Check a signed certificate with a public key set or a CA certificate (one is needed)."""
    from joserfc import jws
    from joserfc.errors import ExceededSizeError, JoseError
    from joserfc.jwk import OKPKey

    if jwks is None and ca_pem is None:
        raise VerificationFailure("malformed", "give the public key set (--jwks) or the CA "
                                  "certificate (--ca) to check the signature with")
    obj, header, payload = parse(text)
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in ACCEPTED_ALGS:
        raise VerificationFailure("wrong_key", f"signed with algorithm {alg!r}; certificates are "
                                  f"signed with {ALG} (Ed25519)")
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
        key = OKPKey.import_key({k: v for k, v in jwk.items() if k != "d"})
    except (JoseError, ValueError, TypeError) as exc:
        raise VerificationFailure("wrong_key", f"key {kid} in the key set is not an Ed25519 "
                                  f"key: {exc}") from exc
    try:
        with _quiet():
            flat: Any = obj
            jws.deserialize_json(flat, key, algorithms=list(ACCEPTED_ALGS), registry=_registry())
    except ExceededSizeError as exc:
        raise VerificationFailure("malformed", f"the certificate is too large to check: {exc}") from exc
    except JoseError:
        raise VerificationFailure(
            "altered", f"the signature does not match the content: the certificate was changed "
            f"after it was signed (or was signed by another key claiming id {kid})") from None
    try:
        doc = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise VerificationFailure("inconsistent", f"the signed payload is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise VerificationFailure("inconsistent", "the signed payload is not a JSON object")
    problems = check_consistency(doc)
    if problems:
        raise VerificationFailure("inconsistent", "signed, but inconsistent: " + "; ".join(problems))
    return Verified(doc=doc, header=header, kid=kid, sha256=hashlib.sha256(payload).hexdigest(),
                    key_source=source, signer_subject=signer_subject)


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
