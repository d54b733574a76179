"""Key management: the operator's own CA, refusals that name the file, key files read from
$CREDENTIALS_DIRECTORY, and publishing old keys beside new ones."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import pytest
from cert_support import KEYS_MADE, settings_for
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from retentiond.certificates.document import canonical
from retentiond.certificates.jws import sign_document, verify_jws
from retentiond.certificates.keys import KeyProblem, init_keys, load_signer, publish

DOC = {"type": "retentiond.disposal-certificate", "serial": "X-000001", "records": [],
       "sequence": 1, "previous": None,
       "totals": {"records": 0, "by_action": {}, "by_category": {}},
       "issued_at": "2026-11-22T12:00:00Z"}


def _own_ca(tmp_path, *, ca: bool = True):
    """An operator's CA (ECDSA), written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Council Root CA")])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(KEYS_MADE - dt.timedelta(days=1))
            .not_valid_after(KEYS_MADE + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "own-ca.pem", tmp_path / "own-ca-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


def test_own_ca_issues_the_signing_certificates(tmp_path):
    """With --ca-cert/--ca-key the CA's key is not copied and its certificate verifies."""
    cert, key = _own_ca(tmp_path)
    result = init_keys(tmp_path / "keys", issuer="Synthetic Borough Council", now=KEYS_MADE,
                       ca_cert=cert, ca_key=key)
    assert result.own_ca and not (tmp_path / "keys" / "ca-key.pem").exists()
    signer = load_signer(settings_for(tmp_path / "keys"))
    signed = sign_document(DOC, jwk=signer.jwk, kid=signer.kid, chain_der=signer.jws_chain_der)
    verified = verify_jws(signed, ca_pem=cert.read_bytes())
    assert verified.doc == json.loads(canonical(DOC))


def test_refusals_name_the_file(tmp_path):
    """Not a CA, a key that is not the CA's, half a pair, existing keys: refused."""
    (tmp_path / "a").mkdir()
    not_ca, not_ca_key = _own_ca(tmp_path / "a", ca=False)
    with pytest.raises(KeyProblem, match="not a CA certificate"):
        init_keys(tmp_path / "k1", issuer="X", now=KEYS_MADE, ca_cert=not_ca, ca_key=not_ca_key)
    (tmp_path / "b").mkdir()
    cert, _ = _own_ca(tmp_path / "b")
    with pytest.raises(KeyProblem, match="does not belong"):
        init_keys(tmp_path / "k2", issuer="X", now=KEYS_MADE, ca_cert=cert, ca_key=not_ca_key)
    with pytest.raises(KeyProblem, match="go together"):
        init_keys(tmp_path / "k3", issuer="X", now=KEYS_MADE, ca_cert=cert)
    with pytest.raises(KeyProblem, match=r"k4/jws-key.jwk: no JWS signing key here"):
        load_signer(settings_for(tmp_path / "k4"))


def test_keys_from_the_credentials_directory(tmp_path, monkeypatch):
    """A key file in $CREDENTIALS_DIRECTORY is read from there (systemd LoadCredential=)."""
    init_keys(tmp_path / "keys", issuer="X", now=KEYS_MADE)
    creds = tmp_path / "creds"
    creds.mkdir()
    shutil.move(tmp_path / "keys" / "jws-key.jwk", creds / "jws-key.jwk")
    shutil.move(tmp_path / "keys" / "signing-key.pem", creds / "signing-key.pem")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    signer = load_signer(settings_for(tmp_path / "keys"))
    assert signer.kid == json.loads((creds / "jws-key.jwk").read_text())["kid"]


def test_publish_keeps_old_keys(tmp_path):
    """After a key change, the published set still holds the old key (no private parts)."""
    init_keys(tmp_path / "old", issuer="X", now=KEYS_MADE)
    init_keys(tmp_path / "new", issuer="X", now=KEYS_MADE)
    publish(settings_for(tmp_path / "old"), tmp_path / "pub-old")
    publish(settings_for(tmp_path / "new"), tmp_path / "pub", also=[tmp_path / "pub-old" / "jwks.json"])
    keys = json.loads((tmp_path / "pub" / "jwks.json").read_text())["keys"]
    assert len(keys) == 2 and all("d" not in k for k in keys)
    old = load_signer(settings_for(tmp_path / "old"))
    signed = sign_document(DOC, jwk=old.jwk, kid=old.kid, chain_der=old.jws_chain_der)
    assert verify_jws(signed, jwks={"keys": keys}).kid == old.kid
