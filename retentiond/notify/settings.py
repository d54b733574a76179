"""The ``[notify]`` section of the config file::

    [notify]
    from = "retentiond@council.example"     # sender of every email
    ig_email = "ig-team@council.example"    # IG officers: alerted when a notice is given up
    max_attempts = 8                        # tries before a notice goes to the dead letters
    backoff_s = 60                          # first retry delay; doubles each try, with jitter
    backoff_max_s = 21600                   # longest delay between tries (6 hours)
    secret_file = "notify-secret"           # HMAC key: webhook signatures, acknowledgement links
    ack_url = "https://retentiond.council.example/acknowledge"   # page that takes ?token=
    ack_link_days = 90                      # an acknowledgement link works this long
    allow_private_webhooks = false          # true: webhooks may point into private networks
    verify_url = "https://council.example/retentiond/"   # where the CA / key set are published
    # Told to a school whose data comes back (termination notices, certificates with returns):
    return_collection = "from your school's folder on the council's secure file transfer site"
    return_password_method = "we agree it with your data protection officer by telephone"

    [notify.smtp]
    host = "smtp.council.example"
    port = 587
    security = "starttls"                   # "starttls", "tls" (implicit, port 465) or "none"
    username = "retentiond"
    password_file = "smtp-password"         # or $CREDENTIALS_DIRECTORY/smtp-password
    ca_file = "/etc/ssl/certs/council-ca.pem"   # optional: trust this CA for the SMTP server
    timeout_s = 30

    [notify.webhook]
    timeout_s = 15

Relative paths are relative to the config file. A file named in the config that is not
there is looked for in ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from retentiond.config import Config, ConfigError

_TOP = {"from", "ig_email", "max_attempts", "backoff_s", "backoff_max_s", "secret_file",
        "ack_url", "verify_url", "smtp", "webhook", "lease_s", "ack_link_days",
        "allow_private_webhooks", "return_collection", "return_password_method"}
_SMTP = {"host", "port", "security", "username", "password_file", "ca_file", "timeout_s"}
_WEBHOOK = {"timeout_s"}


@dataclass(frozen=True, kw_only=True)
class SmtpSettings:
    host: str
    port: int
    security: str
    username: str | None
    password: str | None
    ca_file: Path | None
    timeout_s: float


@dataclass(frozen=True, kw_only=True)
class NotifySettings:
    """Delivery settings; ``secret`` is the HMAC key (webhook signatures and acknowledgement
    tokens), ``None`` when not configured."""

    sender: str
    ig_email: str | None
    max_attempts: int = 8
    backoff_s: float = 60.0
    backoff_max_s: float = 21600.0
    lease_s: int = 600
    secret: bytes | None = None
    ack_url: str | None = None
    verify_url: str | None = None
    smtp: SmtpSettings | None = None
    webhook_timeout_s: float = 15.0
    #: How long an acknowledgement link works, from when its notice was built.
    ack_link_days: int = 90
    #: Whether a controller's webhook may point into a private network (10/8, 192.168/16,
    #: fc00::/7, ...). Link-local, metadata and unspecified addresses are refused regardless.
    allow_private_webhooks: bool = False
    #: Where a school collects returned packages, and how their password reaches it, in words
    #: for the school (None: not configured; the notice says to ask the issuer).
    return_collection: str | None = None
    return_password_method: str | None = None
    #: The return connector's package format (``auto``, ``xlsx``, ``zip``); None: no return
    #: connector is configured.
    return_format: str | None = None


def _return_format(cfg: Config) -> str | None:
    """The package format of the configured ``kind = "return"`` connector, if any (the
    connector itself checks the value when it is loaded)."""
    tables = cfg.raw.get("connectors", {})
    for table in tables.values() if isinstance(tables, dict) else ():
        if isinstance(table, dict) and table.get("kind") == "return":
            fmt = table.get("format", "auto")
            return fmt if isinstance(fmt, str) else None
    return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a folder this user may not look into (0700 root): not there for it
        return False


def _secret_path(p: str, base: Path) -> Path:
    path = Path(p).expanduser()
    if not path.is_absolute():
        creds = os.environ.get("CREDENTIALS_DIRECTORY")
        if creds and (Path(creds) / path.name).is_file() and not _is_file(base / path):
            return Path(creds) / path.name
        path = (base / path).resolve()
    return path


def _read_secret(p: str, base: Path, where: str) -> bytes:
    path = _secret_path(p, base)
    try:
        data = path.read_bytes().strip()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}") from exc
    if not data:
        raise ConfigError(f"{where}: {path} is empty")
    return data


def allow_private_webhooks(cfg: Config) -> bool:
    """``[notify] allow_private_webhooks`` alone, for commands (``controllers import``) that
    must not need the secrets the rest of ``[notify]`` names."""
    table: Any = cfg.raw.get("notify", {})
    value = table.get("allow_private_webhooks", False) if isinstance(table, dict) else False
    if not isinstance(value, bool):
        raise ConfigError(f"{cfg.source or 'config'}: [notify].allow_private_webhooks: must be "
                          f"true or false, not {value!r}")
    return value


def notify_settings(cfg: Config) -> NotifySettings:
    """Read and check ``[notify]``; errors name the file and the key."""
    where = cfg.source or "config"
    table: Any = cfg.raw.get("notify", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: [notify] must be a table")
    base = Path(cfg.source).parent if cfg.source else Path.cwd()

    def check(tab: dict[str, Any], allowed: set[str], name: str) -> None:
        for key in tab:
            if key not in allowed:
                raise ConfigError(f"{where}: [{name}].{key}: unknown key "
                                  f"(allowed: {', '.join(sorted(allowed))})")

    def get(tab: dict[str, Any], key: str, kind: type | tuple[type, ...], name: str,
            default: Any = None) -> Any:
        value = tab.get(key, default)
        if value is not None and (not isinstance(value, kind) or isinstance(value, bool)):
            raise ConfigError(f"{where}: [{name}].{key}: wrong type: {value!r}")
        return value

    check(table, _TOP, "notify")
    smtp_t = table.get("smtp", {})
    hook_t = table.get("webhook", {})
    if not isinstance(smtp_t, dict) or not isinstance(hook_t, dict):
        raise ConfigError(f"{where}: [notify.smtp] and [notify.webhook] must be tables")
    check(smtp_t, _SMTP, "notify.smtp")
    check(hook_t, _WEBHOOK, "notify.webhook")
    max_attempts = get(table, "max_attempts", int, "notify", 8)
    if max_attempts < 1:
        raise ConfigError(f"{where}: [notify].max_attempts: must be at least 1")
    backoff = float(get(table, "backoff_s", (int, float), "notify", 60))
    backoff_max = float(get(table, "backoff_max_s", (int, float), "notify", 21600))
    if backoff <= 0 or backoff_max < backoff:
        raise ConfigError(f"{where}: [notify].backoff_s must be positive and not above backoff_max_s")
    smtp = None
    if smtp_t:
        host = get(smtp_t, "host", str, "notify.smtp")
        if not host:
            raise ConfigError(f"{where}: [notify.smtp].host: required when [notify.smtp] is given")
        security = get(smtp_t, "security", str, "notify.smtp", "starttls")
        if security not in ("starttls", "tls", "none"):
            raise ConfigError(f"{where}: [notify.smtp].security: must be starttls, tls or none, "
                              f"not {security!r}")
        port = get(smtp_t, "port", int, "notify.smtp", 465 if security == "tls" else 587)
        username = get(smtp_t, "username", str, "notify.smtp")
        pw_file = get(smtp_t, "password_file", str, "notify.smtp")
        if username and not pw_file:
            raise ConfigError(f"{where}: [notify.smtp].password_file: required with username")
        password = (_read_secret(pw_file, base, f"{where}: [notify.smtp].password_file").decode()
                    if pw_file else None)
        ca = get(smtp_t, "ca_file", str, "notify.smtp")
        smtp = SmtpSettings(host=host, port=port, security=security, username=username,
                            password=password,
                            ca_file=(base / ca).resolve() if ca else None,
                            timeout_s=float(get(smtp_t, "timeout_s", (int, float), "notify.smtp", 30)))
    secret_file = get(table, "secret_file", str, "notify")
    ack_link_days = get(table, "ack_link_days", int, "notify", 90)
    if not 1 <= ack_link_days <= 3660:
        raise ConfigError(f"{where}: [notify].ack_link_days: must be from 1 to 3660, "
                          f"not {ack_link_days}")
    allow_private = allow_private_webhooks(cfg)
    return NotifySettings(
        sender=get(table, "from", str, "notify", "retentiond@localhost"),
        ig_email=get(table, "ig_email", str, "notify"),
        max_attempts=max_attempts, backoff_s=backoff, backoff_max_s=backoff_max,
        lease_s=get(table, "lease_s", int, "notify", 600),
        secret=_read_secret(secret_file, base, f"{where}: [notify].secret_file")
        if secret_file else None,
        ack_url=get(table, "ack_url", str, "notify"),
        verify_url=get(table, "verify_url", str, "notify"),
        smtp=smtp,
        webhook_timeout_s=float(get(hook_t, "timeout_s", (int, float), "notify.webhook", 15)),
        ack_link_days=ack_link_days, allow_private_webhooks=allow_private,
        return_collection=get(table, "return_collection", str, "notify"),
        return_password_method=get(table, "return_password_method", str, "notify"),
        return_format=_return_format(cfg),
    )
