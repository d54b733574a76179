"""The ``[certificates]`` section of the config file.

Every key is optional except ``issuer`` (needed only to issue certificates)::

    [certificates]
    issuer = "Synthetic Borough Council"        # who states the disposals
    issuer_contact = "ig@council.example"       # printed on each certificate
    key_dir = "/var/lib/retentiond/keys"        # where 'keys init' writes and the keys are read
    batch = "daily"                             # "run": a certificate per run; "daily": per day
    # Paths of single files, when they are not in key_dir (or in $CREDENTIALS_DIRECTORY):
    # jws_key, jws_cert, signing_key, signing_cert, ca_cert
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retentiond.config import Config, ConfigError

BATCH_MODES = ("run", "daily")

#: File names inside the key directory (and names of systemd credentials).
JWS_KEY = "jws-key.jwk"
JWS_CERT = "jws-cert.pem"
SIGNING_KEY = "signing-key.pem"
SIGNING_CERT = "signing-cert.pem"
CA_CERT = "ca-cert.pem"
CA_KEY = "ca-key.pem"

_FILE_KEYS = {"jws_key": JWS_KEY, "jws_cert": JWS_CERT, "signing_key": SIGNING_KEY,
              "signing_cert": SIGNING_CERT, "ca_cert": CA_CERT}
_KEYS = {"issuer", "issuer_contact", "key_dir", "batch", *_FILE_KEYS}


@dataclass(frozen=True, kw_only=True)
class CertificateSettings:
    """What issuing and key management need from the config file."""

    #: The config file these came from (for error messages).
    where: str
    issuer: str | None
    issuer_contact: str | None
    key_dir: Path
    batch: str
    #: Explicit paths from the config, by file name (JWS_KEY, ...).
    files: dict[str, Path]

    def path(self, name: str) -> Path:
        """Where to read one key file: an explicit path in the config, else a systemd
        credential of that name, else the key directory."""
        if name in self.files:
            return self.files[name]
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if creds and (Path(creds) / name).is_file():
            return Path(creds) / name
        return self.key_dir / name

    def require_issuer(self) -> str:
        if not self.issuer:
            raise ConfigError(f"{self.where}: [certificates].issuer is required to issue "
                              "certificates (the organisation that states the disposals)")
        return self.issuer


def _state_dir() -> Path:
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "retentiond"


def certificate_settings(cfg: Config) -> CertificateSettings:
    """Read and check ``[certificates]``; errors name the file and the key."""
    where = cfg.source or "config"
    table: Any = cfg.raw.get("certificates", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [certificates] must be a table")
    for key in table:
        if key not in _KEYS:
            raise ConfigError(f"{where}: [certificates].{key}: unknown key "
                              f"(allowed: {', '.join(sorted(_KEYS))})")
    for key, value in table.items():
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: [certificates].{key}: must be a non-empty string, "
                              f"not {value!r}")
    base = Path(cfg.source).parent if cfg.source else Path.cwd()

    def resolve(p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else (base / path).resolve()

    batch = table.get("batch", "run")
    if batch not in BATCH_MODES:
        raise ConfigError(f"{where}: [certificates].batch: must be one of "
                          f"{', '.join(BATCH_MODES)}, not {batch!r}")
    return CertificateSettings(
        where=where,
        issuer=table.get("issuer"),
        issuer_contact=table.get("issuer_contact"),
        key_dir=resolve(table["key_dir"]) if "key_dir" in table else _state_dir() / "keys",
        batch=batch,
        files={name: resolve(table[key]) for key, name in _FILE_KEYS.items() if key in table},
    )
