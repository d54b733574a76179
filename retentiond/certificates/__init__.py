"""Disposal certificates: build, sign (JWS and PAdES PDF), render, verify. See
``docs/certificates.md``.

For the daemon::

    from retentiond.certificates import issue_certificates, signer_from_config
    signer = signer_from_config(cfg)              # once, at start (reads [certificates])
    issued = issue_certificates(ctx, signer, batch=cfg_batch)   # "run" or "daily"
"""

from __future__ import annotations

from retentiond.certificates.issue import IssuedCertificate, batch_label, issue_certificates
from retentiond.certificates.keys import KeyProblem, Signer, load_signer
from retentiond.certificates.settings import CertificateSettings, certificate_settings
from retentiond.config import Config


def signer_from_config(cfg: Config) -> Signer:
    """The signing keys ``[certificates]`` names (raises KeyProblem or ConfigError)."""
    return load_signer(certificate_settings(cfg))


__all__ = [
    "CertificateSettings",
    "IssuedCertificate",
    "KeyProblem",
    "Signer",
    "batch_label",
    "certificate_settings",
    "issue_certificates",
    "load_signer",
    "signer_from_config",
]
