"""Key management: the keys that sign certificates, and what controllers need to check them.

Two signatures, one trust anchor:

- the JSON certificate is a JWS signed with an **Ed25519** key (``jws-key.jwk``, with a key
  id: the key's RFC 7638 thumbprint). A certificate for that key issued by the CA
  (``jws-cert.pem``) travels in the JWS header (``x5c``), so a controller can check a JSON
  certificate with the public key set (``jwks.json``) or with the CA certificate alone;
- the PDF carries a PAdES signature made with an RSA key (``signing-key.pem``) whose
  certificate (``signing-cert.pem``) the same CA issued. RSA because every PDF reader, and
  poppler's ``pdfsig``, checks it.

``keys init`` makes a self-signed CA for both, or uses the operator's own CA (``--ca-cert``
and ``--ca-key``: its private key is read once to issue the two certificates and is not
copied). Private keys are written with mode 0600 and never overwritten without ``--force``.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from retentiond.certificates.settings import (
    CA_CERT,
    CA_KEY,
    JWS_CERT,
    JWS_KEY,
    SIGNING_CERT,
    SIGNING_KEY,
    CertificateSettings,
)
from retentiond.config import ConfigError


class KeyProblem(ConfigError):
    """A key file is missing, unreadable or does not fit; the message names the file."""


@dataclass(frozen=True, kw_only=True)
class Signer:
    """Everything issuing needs to sign: loaded once, used for many certificates."""

    issuer: str
    issuer_contact: str | None
    #: The Ed25519 private key as a JWK (a dict with ``kid``).
    jwk: dict[str, Any]
    kid: str
    #: DER of the JWS key's certificate and of the CA certificate (the ``x5c`` chain).
    jws_chain_der: tuple[bytes, ...]
    signing_key_pem: bytes
    signing_cert_pem: bytes
    ca_cert_pem: bytes
    #: When both signing certificates are valid: certificates are issued only in between.
    valid_from: dt.datetime
    valid_until: dt.datetime

    def check_valid(self, at: dt.datetime) -> None:
        """Refuse to sign outside the signing certificates' validity."""
        if not self.valid_from <= at <= self.valid_until:
            raise KeyProblem(
                f"the signing certificates are valid from {self.valid_from.isoformat()} to "
                f"{self.valid_until.isoformat()}, not at {at.isoformat()}: make new keys with "
                "'retentiond keys init' and publish them")


def _name(common_name: str, organisation: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation[:64]),
    ])


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=sign, content_commitment=sign, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )


def _pem_key(key: Any) -> bytes:
    data: bytes = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    return data


def _write(path: Path, data: bytes, *, private: bool) -> None:
    """Write a file whole; a private key is created 0600 and never readable by others."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, 0o600 if private else 0o644)
    os.replace(tmp, path)


def _issue(subject: x509.Name, public_key: Any, ca_cert: x509.Certificate,
           ca_key: CertificateIssuerPrivateKeyTypes, now: dt.datetime, days: int,
           usage: x509.ObjectIdentifier | None = None) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca_cert.subject)
        .public_key(public_key).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(min(now + dt.timedelta(days=days), ca_cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(sign=True, ca=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            ca_cert.public_key()), critical=False)  # type: ignore[arg-type]
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


def _self_signed_ca(issuer: str, now: dt.datetime, days: int) -> tuple[x509.Certificate, Any]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    name = _name(f"{issuer} retentiond certificate authority", issuer)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _load_ca(cert_path: Path, key_path: Path, password: bytes | None) -> tuple[x509.Certificate, Any]:
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise KeyProblem(f"{cert_path}: not a readable PEM certificate: {exc}") from exc
    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=password)
    except (OSError, ValueError, TypeError) as exc:
        raise KeyProblem(f"{key_path}: not a readable PEM private key: {exc}") from exc
    try:
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        bc = None
    if bc is None or not bc.ca:
        raise KeyProblem(f"{cert_path}: not a CA certificate (basicConstraints CA:TRUE missing)")
    pub = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    mine = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    if pub != mine:
        raise KeyProblem(f"{key_path}: this private key does not belong to {cert_path}")
    return cert, key


@dataclass(frozen=True, kw_only=True)
class InitResult:
    """What ``keys init`` wrote."""

    directory: Path
    kid: str
    files: tuple[Path, ...]
    own_ca: bool


def init_keys(directory: Path, *, issuer: str, now: dt.datetime, force: bool = False,
              ca_cert: Path | None = None, ca_key: Path | None = None,
              ca_key_password: bytes | None = None, days: int = 5 * 366,
              ca_days: int = 20 * 366) -> InitResult:
    """Create the signing keys and their certificates in ``directory``."""
    from joserfc.jwk import OKPKey

    if (ca_cert is None) != (ca_key is None):
        raise KeyProblem("--ca-cert and --ca-key go together: give both or neither")
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    names = [JWS_KEY, JWS_CERT, SIGNING_KEY, SIGNING_CERT, CA_CERT]
    if ca_cert is None:
        names.append(CA_KEY)
    existing = [n for n in names if (directory / n).exists()]
    if existing and not force:
        raise KeyProblem(f"{directory}: already holds {', '.join(existing)}; refusing to "
                         "overwrite signing keys (certificates already issued name them). "
                         "Use another --dir, or --force to replace them")
    if ca_cert is not None and ca_key is not None:
        ca, ca_private = _load_ca(ca_cert, ca_key, ca_key_password)
        own = True
    else:
        ca, ca_private = _self_signed_ca(issuer, now, ca_days)
        own = False

    ed = ed25519.Ed25519PrivateKey.generate()
    ed_pem = _pem_key(ed)
    kid = OKPKey.import_key(ed_pem).thumbprint()
    jwk = OKPKey.import_key(ed_pem, {"kid": kid, "use": "sig"}).as_dict(private=True)
    jws_cert = _issue(_name(f"{issuer} certificate signing key {kid[:12]}", issuer),
                      ed.public_key(), ca, ca_private, now, days)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    pdf_cert = _issue(_name(f"{issuer} disposal certificates", issuer), rsa_key.public_key(),
                      ca, ca_private, now, days, ExtendedKeyUsageOID.EMAIL_PROTECTION)

    pem = serialization.Encoding.PEM
    written = []
    for name, data, private in (
        (JWS_KEY, json.dumps(jwk, indent=2).encode() + b"\n", True),
        (JWS_CERT, jws_cert.public_bytes(pem), False),
        (SIGNING_KEY, _pem_key(rsa_key), True),
        (SIGNING_CERT, pdf_cert.public_bytes(pem), False),
        (CA_CERT, ca.public_bytes(pem), False),
    ):
        _write(directory / name, data, private=private)
        written.append(directory / name)
    if not own:
        _write(directory / CA_KEY, _pem_key(ca_private), private=True)
        written.append(directory / CA_KEY)
    return InitResult(directory=directory, kid=kid, files=tuple(written), own_ca=own)


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise KeyProblem(f"{path}: no {what} here: run 'retentiond keys init' (or set its "
                         "path in [certificates])") from None
    except OSError as exc:
        raise KeyProblem(f"{path}: cannot read the {what}: {exc.strerror}") from exc


def public_jwk(settings: CertificateSettings) -> dict[str, Any]:
    """The public half of the JWS key, with its ``kid`` and no ``alg``: one Ed25519 key
    checks signatures named ``Ed25519`` (RFC 9864, since version 2) and ``EdDSA`` (version
    1), and libraries that match a key's ``alg`` to the signature's would refuse one of them."""
    return {k: v for k, v in _private_jwk(settings).items() if k not in ("d", "alg")}


def _private_jwk(settings: CertificateSettings) -> dict[str, Any]:
    path = settings.path(JWS_KEY)
    try:
        jwk = json.loads(_read(path, "JWS signing key"))
    except json.JSONDecodeError as exc:
        raise KeyProblem(f"{path}: not a JSON Web Key: {exc}") from exc
    if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" \
            or not jwk.get("kid"):
        raise KeyProblem(f"{path}: not an Ed25519 JSON Web Key with a kid")
    return jwk


def load_signer(settings: CertificateSettings) -> Signer:
    """Read the signing keys named by ``[certificates]``; errors name the file."""
    jwk = _private_jwk(settings)
    if "d" not in jwk:
        raise KeyProblem(f"{settings.path(JWS_KEY)}: holds no private key")
    jws_cert = _read(settings.path(JWS_CERT), "JWS key certificate")
    ca_pem = _read(settings.path(CA_CERT), "CA certificate")
    try:
        jws_x509 = x509.load_pem_x509_certificate(jws_cert)
        ca = x509.load_pem_x509_certificate(ca_pem)
    except ValueError as exc:
        raise KeyProblem(f"a certificate in {settings.key_dir} is not PEM: {exc}") from exc
    from joserfc.jwk import OKPKey

    mine = OKPKey.import_key(jwk).as_dict(private=False).get("x")
    cert_x = OKPKey.import_key(jws_x509.public_bytes(serialization.Encoding.PEM)).as_dict().get("x")
    if mine != cert_x:
        raise KeyProblem(f"{settings.path(JWS_CERT)} does not certify the key in "
                         f"{settings.path(JWS_KEY)}")
    der = serialization.Encoding.DER
    signing_pem = _read(settings.path(SIGNING_CERT), "PDF signing certificate")
    try:
        pdf_x509 = x509.load_pem_x509_certificate(signing_pem)
    except ValueError as exc:
        raise KeyProblem(f"{settings.path(SIGNING_CERT)}: not a PEM certificate: {exc}") from exc
    return Signer(
        issuer=settings.require_issuer(), issuer_contact=settings.issuer_contact,
        jwk=jwk, kid=str(jwk["kid"]),
        jws_chain_der=(jws_x509.public_bytes(der), ca.public_bytes(der)),
        signing_key_pem=_read(settings.path(SIGNING_KEY), "PDF signing key"),
        signing_cert_pem=signing_pem,
        ca_cert_pem=ca_pem,
        valid_from=max(jws_x509.not_valid_before_utc, pdf_x509.not_valid_before_utc),
        valid_until=min(jws_x509.not_valid_after_utc, pdf_x509.not_valid_after_utc),
    )


def publish(settings: CertificateSettings, out: Path, *,
            also: list[Path] | None = None) -> list[Path]:
    """Write what controllers need to check certificates: ``jwks.json`` (the public key, plus
    the keys of any earlier key sets given in ``also``, so old certificates still verify after
    a key change) and ``ca.pem``."""
    keys = [public_jwk(settings)]
    for path in also or []:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise KeyProblem(f"{path}: not a readable JWK set: {exc}") from exc
        for key in doc.get("keys", []) if isinstance(doc, dict) else []:
            if isinstance(key, dict) and "d" not in key and \
                    key.get("kid") not in {k["kid"] for k in keys}:
                keys.append({k: v for k, v in key.items() if k != "alg"})
    out.mkdir(parents=True, exist_ok=True)
    jwks = out / "jwks.json"
    ca = out / "ca.pem"
    _write(jwks, json.dumps({"keys": keys}, indent=2).encode() + b"\n", private=False)
    _write(ca, _read(settings.path(CA_CERT), "CA certificate"), private=False)
    return [jwks, ca]
