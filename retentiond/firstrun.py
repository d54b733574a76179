"""First run for a platform team (``retentiond init``): a commented config file, the default
policy pack, the secrets (signing keys, the log pseudonym key, the notification secret) with
safe permissions, and a created or migrated registry.

Everything goes in one folder (default ``/etc/retentiond``)::

    retentiond.toml                 0640   the config, commented (group: the service's)
    policies/isa-default.toml       0644   the pack in force, a copy the council controls
    policies-available/*.toml       0644   packs to review and sign off before use
    credentials/                    0700   secrets; systemd hands them to the service
      pseudonym.key, notify-secret  0600
      keys/                         0700   'keys init': jws-key.jwk, signing-key.pem,
                                           ca-key.pem 0600; the certificates 0644

Nothing is overwritten without ``force``; a refusal names every file in the way and writes
nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import pwd
import secrets
import string
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import make_url

from retentiond import __version__
from retentiond.certificates.keys import init_keys
from retentiond.certificates.settings import (
    CA_CERT,
    CA_KEY,
    JWS_CERT,
    JWS_KEY,
    SIGNING_CERT,
    SIGNING_KEY,
    certificate_settings,
)
from retentiond.config import ConfigError, load_config, packaged_packs
from retentiond.registry.db import current_revision, make_engine, normalise_url, upgrade

SYSTEM_DIR = Path("/etc/retentiond")
SYSTEM_DATABASE = "sqlite:////var/lib/retentiond/retentiond.db"
SERVICE_USER = "retentiond"
DEFAULT_PACK = "isa-default.toml"
CONFIG_NAME = "retentiond.toml"
#: Signing key files, as certificates/settings.py names them (and the systemd credentials).
KEY_FILES = (JWS_KEY, JWS_CERT, SIGNING_KEY, SIGNING_CERT, CA_CERT, CA_KEY)


class InitRefused(ConfigError):
    """``init`` cannot go ahead; nothing was written."""


@dataclass(frozen=True, kw_only=True)
class Written:
    path: Path
    mode: int


@dataclass(frozen=True, kw_only=True)
class InitResult:
    """What ``init`` did."""

    directory: Path
    config: Path
    database: str  # the URL, without any password
    revision: str
    key_id: str
    files: tuple[Written, ...]
    owner: str | None  # the service user given the database and the config's group


def default_database_url(directory: Path) -> str:
    """The registry beside a private install, or in the service's state folder for the
    system one (``/etc`` is read-only to the service under ``ProtectSystem=strict``)."""
    if directory == SYSTEM_DIR:
        return SYSTEM_DATABASE
    return f"sqlite:///{directory / 'retentiond.db'}"


def _check_database_url(url: str) -> None:
    try:
        parsed = make_url(normalise_url(url))
    except Exception as exc:  # SQLAlchemy raises ArgumentError and ValueError subclasses
        raise InitRefused(f"--database-url: not a database URL: {exc}") from None
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise InitRefused(f"--database-url: use sqlite:/// or postgresql://, not "
                          f"{parsed.get_backend_name()!r}")
    if parsed.password:
        raise InitRefused("--database-url: put no password in the config file; give libpq a "
                          "password file (PGPASSFILE, under systemd as a credential: "
                          "docs/install.md)")


def _service_owner(user: str | None) -> tuple[int, int, str] | None:
    """(uid, gid, name) of the user the service runs as, when this process may give it files:
    only root can, and only to a user that exists."""
    if os.geteuid() != 0:
        if user:
            raise InitRefused(f"--user {user}: only root can give files to another user")
        return None
    name = user or SERVICE_USER
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        if user:
            raise InitRefused(f"--user {user}: no such user") from None
        return None  # no service user yet (systemd-sysusers makes it): root keeps the files
    return entry.pw_uid, entry.pw_gid, name


def _write(path: Path, data: bytes, mode: int) -> Written:
    """Write a file whole (a temporary file, fsync, rename) with ``mode`` from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # A new file, never one someone left there (a link to elsewhere would receive a secret).
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)  # whatever the umask
    os.replace(tmp, path)
    return Written(path=path, mode=mode)


def _private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _secret() -> bytes:
    return base64.b64encode(secrets.token_bytes(32)) + b"\n"


def init(directory: Path, *, issuer: str, now: dt.datetime, contact: str | None = None,
         database_url: str | None = None, public_url: str | None = None,
         force: bool = False, user: str | None = None) -> InitResult:
    """Set up ``directory`` for a first run; see the module's docstring."""
    directory = directory.expanduser().absolute()
    if not issuer.strip():
        raise InitRefused("--issuer: name the organisation that issues disposal certificates")
    if public_url and not public_url.startswith(("https://", "http://")):
        raise InitRefused(f"--url: must start with https://, not {public_url!r}")
    url = database_url or default_database_url(directory)
    _check_database_url(url)
    owner = _service_owner(user)
    config = directory / CONFIG_NAME
    credentials = directory / "credentials"
    keys = credentials / "keys"
    packs = packaged_packs()
    others = sorted(p.name for p in packs.glob("*.toml") if p.name != DEFAULT_PACK)
    targets = [config, directory / "policies" / DEFAULT_PACK,
               *(directory / "policies-available" / name for name in others),
               credentials / "pseudonym.key", credentials / "notify-secret",
               *(keys / name for name in KEY_FILES)]
    in_the_way = [str(p) for p in targets if p.exists() or p.is_symlink()]
    if in_the_way and not force:
        raise InitRefused(
            f"{directory}: already set up; refusing to overwrite {', '.join(in_the_way)} "
            "(certificates already issued name the signing keys, and the pseudonym key keeps "
            "log pseudonyms stable). Use --force to replace them, or another --dir")

    # Reach the database before writing anything, so that a wrong URL leaves nothing behind.
    # The registry holds dates of birth: a new SQLite file (and its journal) is the owner's
    # alone, whatever this shell's umask.
    engine = make_engine(url)
    umask = os.umask(0o077)
    try:
        with engine.connect():
            pass
    except Exception as exc:  # any driver error: say which database, not the SQL
        engine.dispose()
        first = next((line for line in str(exc).splitlines() if line.strip()), type(exc).__name__)
        raise InitRefused(f"cannot reach the database "
                          f"{engine.url.render_as_string(hide_password=True)}: {first}") from None
    finally:
        os.umask(umask)

    directory.mkdir(parents=True, exist_ok=True)
    written = [_write(config, render_config(
        directory=directory, issuer=issuer, contact=contact, database_url=url,
        public_url=public_url.rstrip("/") if public_url else None, now=now).encode(), 0o640)]
    written.append(_write(directory / "policies" / DEFAULT_PACK,
                          (packs / DEFAULT_PACK).read_bytes(), 0o644))
    written += [_write(directory / "policies-available" / name, (packs / name).read_bytes(), 0o644)
                for name in others]
    _private_dir(credentials)
    written.append(_write(credentials / "pseudonym.key", _secret(), 0o600))
    written.append(_write(credentials / "notify-secret", _secret(), 0o600))
    _private_dir(keys)
    for name in KEY_FILES:  # with --force, a CA key left from before must not linger
        (keys / name).unlink(missing_ok=True)
    made = init_keys(keys, issuer=issuer, now=now, force=True)
    written += [Written(path=p, mode=p.stat().st_mode & 0o777) for p in made.files]

    _check_sections(config)
    umask = os.umask(0o077)
    try:
        upgrade(engine)
    finally:
        os.umask(umask)
    revision = current_revision(engine) or ""
    engine.dispose()
    if owner is not None:
        uid, gid, _name = owner
        os.chown(config, 0, gid)  # root's file, readable by the service's group (0640)
        if engine.url.get_backend_name() == "sqlite" and engine.url.database:
            db = Path(engine.url.database)
            for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
                if path.exists():
                    os.chown(path, uid, gid)
            if db.parent != directory:
                os.chown(db.parent, uid, gid)
    return InitResult(directory=directory, config=config,
                      database=engine.url.render_as_string(hide_password=True),
                      revision=revision, key_id=made.kid, files=tuple(written),
                      owner=owner[2] if owner else None)


def _check_sections(config: Path) -> None:
    """What was written must be what the service accepts: each subsystem reads its section."""
    from retentiond.daemon.settings import load_settings
    from retentiond.notify.settings import notify_settings
    from retentiond.web.settings import load_web_settings

    cfg = load_config(str(config))
    load_settings(cfg)
    load_web_settings(cfg)
    certificate_settings(cfg).require_issuer()
    notify_settings(cfg)


def render_config(*, directory: Path, issuer: str, contact: str | None, database_url: str,
                  public_url: str | None, now: dt.datetime) -> str:
    """The commented config file ``init`` writes."""
    def toml(text: str) -> str:
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'

    def optional(key: str, value: str | None, example: str) -> str:
        return f"{key} = {toml(value)}" if value else f"#{key} = {toml(example)}"

    site = public_url or "https://retentiond.council.example"
    return _CONFIG.substitute(
        version=__version__, date=now.date().isoformat(), directory=str(directory),
        database=toml(database_url), issuer=toml(issuer),
        contact=optional("issuer_contact", contact, "ig@council.example"),
        public_url=optional("public_url", public_url, site),
        ack_url=optional("ack_url", public_url and f"{public_url}/acknowledge",
                         f"{site}/acknowledge"),
        verify_url=optional("verify_url", public_url and f"{public_url}/keys/ca.pem",
                            f"{site}/keys/ca.pem"),
    )


_CONFIG = string.Template('''\
# retentiond configuration, written by 'retentiond init' (retentiond $version) on $date.
#
# Every key is optional unless it says otherwise; docs/configuration.md explains them all.
# Relative paths are relative to this file's folder ($directory). A mistake (an unknown
# key, a wrong type) is refused naming this file and the key, at start and on reload
# (systemctl reload retentiond). Check it now with:  retentiond --config THIS-FILE db status

[database]
# SQLite (one daemon per file) or PostgreSQL (production; several instances may share it):
#   url = "postgresql://retentiond@db.internal/retentiond"
# Put no password here: give libpq a password file (PGPASSFILE; under systemd a credential,
# docs/install.md).
url = $database

[policies]
# The policy packs in force: every *.toml in this folder. policies/isa-default.toml is the
# seed agreement's four rules, a copy the council controls: retentiond upgrades do not change
# it. A change to a pack changes due dates; preview it first (the web UI's Policy page, or
# 'retentiond policies check'). policies-available/ holds the wider English rules: review
# them, sign them off (docs/policies.md), then move the file into policies/.
paths = ["policies"]

[logging]
level = "info"            # debug, info, warning, error
format = "json"           # json (one object per line, for journald) or console
# The key of the keyed pseudonyms that replace personal data in logs (stable across runs).
# Under systemd the unit hands it to the service as a credential instead.
pseudonym_key_file = "credentials/pseudonym.key"

[daemon]
# Migrate the database at start, behind an advisory lock on PostgreSQL.
migrate_on_start = true

[metrics]
# Prometheus /metrics and /healthz; keep it on loopback.
listen = "127.0.0.1:9464"

[web]
# The review UI and REST API, served by 'retentiond run'. Keep it on loopback behind a
# TLS-terminating reverse proxy (docs/install.md): the session cookie is sent over HTTPS only.
enabled = true
listen = "127.0.0.1:8080"
trusted_proxies = "127.0.0.1"   # the proxy, whose X-Forwarded-For is believed
# The address people reach the service at (OpenID Connect redirects need it):
$public_url

[certificates]
# Who states the disposals, on every certificate.
issuer = $issuer
$contact
# The signing keys 'retentiond init' made. Under systemd the unit hands them to the
# service as credentials. Publish the public half: 'retentiond keys publish --out DIR'.
# credentials/keys/ca-key.pem is the self-signed CA's private key: keep it offline once
# the service runs (docs/certificates.md, "Key management").
key_dir = "credentials/keys"
batch = "daily"           # one certificate per controller per day ("run": per run)

[notify]
# Notices to controllers (certificates, advance notice) by email and webhook.
#from = "retentiond@council.example"
#ig_email = "ig-team@council.example"        # alerted when a notice is given up
# The key of acknowledgement links and webhook signatures ('init' made it).
secret_file = "credentials/notify-secret"
# The acknowledgement page behind the proxy, and the published CA certificate, which checks
# both the PDF and the JSON (the service serves it at /keys/ca.pem; or 'keys publish'):
$ack_url
$verify_url

#[notify.smtp]
#host = "smtp.council.example"
#port = 587
#security = "starttls"                       # starttls, tls or none
#username = "retentiond"
#password_file = "credentials/smtp-password"

# [connectors.NAME]: the systems that hold the data (docs/connectors.md). None is set up:
# a disposal of a record whose system has no connector fails, visibly, until one is.
#[connectors.mis]
#kind = "sql"
#url_credential = "mis-url"
#table = "pupils"
#key_column = "upn"
''')
