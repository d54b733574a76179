"""The ``[web]`` section of the configuration, validated, with errors naming file and key.

```toml
[web]
enabled = true                      # the daemon starts the web app too
listen = "127.0.0.1:8080"           # host:port
public_url = "https://retention.council.example"   # for OpenID Connect redirects
session_idle_minutes = 30
session_absolute_hours = 12
cookie_secure = true                # false only for plain-http development on loopback
cookie_samesite = "lax"             # lax or strict
login_max_failures = 5              # per user name, and 4x that per client address, ...
login_window_minutes = 15           # ... within this window
overdue_days = 30                   # an open case this long past its due date is "overdue"
assets_dir = ""                     # GOV.UK Frontend's dist/govuk (default: set up by ./dev)
trusted_proxies = ""                # addresses whose X-Forwarded-For is believed

[web.oidc]
issuer = "https://login.microsoftonline.com/TENANT-ID/v2.0"
client_id = "..."
client_secret_file = "/etc/retentiond/oidc-secret"
username_claim = "preferred_username"      # or "oid", "upn", "email", "sub"
label = "Sign in with your council account"
# tenant_id = "..."                 # implied by a .../TENANT-GUID/v2.0 issuer; then tid must match
# token_endpoint_auth_method = "client_secret_basic"   # or "client_secret_post" (default: as
#                                   # the provider's discovery document allows, basic first)
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from retentiond.config import Config, ConfigError

WEB_DIR = Path(__file__).resolve().parent
DEFAULT_ASSETS = WEB_DIR / "static" / "govuk"


@dataclass(frozen=True, kw_only=True)
class OidcSettings:
    """An OpenID Connect provider (Entra ID: a tenant-specific issuer)."""

    issuer: str
    client_id: str
    client_secret: str
    username_claim: str = "preferred_username"
    scopes: str = "openid profile email"
    label: str = "Sign in with your organisation account"
    #: Entra ID's directory (``tid``), lower case: the ID token must carry it. Set from a
    #: ``.../TENANT-GUID/v2.0`` issuer, or by ``tenant_id``.
    tenant_id: str | None = None
    #: "client_secret_basic" or "client_secret_post"; empty: as the provider allows.
    token_endpoint_auth_method: str = ""


#: Entra ID's multi-tenant endpoints: tokens from any organisation (or personal accounts).
MULTI_TENANT = ("common", "organizations", "consumers")
LOOPBACK = ("127.0.0.1", "localhost", "::1")
#: Entra ID's sign-in hosts (public cloud, US government, China).
ENTRA_HOSTS = ("login.microsoftonline.com", "login.microsoftonline.us", "login.partner.microsoftonline.cn")
#: Claims that name a person within one Entra ID tenant (not "email": unverified there).
ENTRA_USERNAME_CLAIMS = ("preferred_username", "upn", "oid", "sub")
_GUID = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
_ENTRA_PATH = re.compile(rf"^/({_GUID})/v2\.0/?$")


@dataclass(frozen=True, kw_only=True)
class WebSettings:
    """What the web app needs to know; defaults are safe for production."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    cookie_secure: bool = True
    cookie_samesite: str = "lax"
    login_max_failures: int = 5
    login_window_minutes: int = 15
    overdue_days: int = 30
    assets_dir: Path = DEFAULT_ASSETS
    trusted_proxies: str = ""
    oidc: OidcSettings | None = None

    @property
    def session_cookie(self) -> str:
        # The __Host- prefix makes the browser refuse the cookie unless it is Secure, has
        # Path=/ and no Domain: no sibling sub-domain can set or read it.
        return "__Host-retentiond" if self.cookie_secure else "retentiond_session"


def _typed(table: dict[str, Any], key: str, kind: type, where: str) -> Any:
    value = table.get(key)
    if value is None:
        return None
    if kind is int and isinstance(value, bool):
        raise ConfigError(f"{where}.{key}: must be a whole number, not {value!r}")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}.{key}: must be a {kind.__name__}, not {value!r}")
    return value


def _positive(table: dict[str, Any], key: str, where: str, default: int) -> int:
    value = _typed(table, key, int, where)
    if value is None:
        return default
    if value <= 0:
        raise ConfigError(f"{where}.{key}: must be more than 0, not {value}")
    return int(value)


def load_web_settings(cfg: Config) -> WebSettings:
    """Read ``[web]`` from the configuration; refuse unknown keys and wrong types."""
    source = cfg.source or "config"
    where = f"{source}: [web]"
    web = cfg.raw.get("web", {})
    if not isinstance(web, dict):
        raise ConfigError(f"{where}: must be a table")
    allowed = {"enabled", "listen", "public_url", "session_idle_minutes",
               "session_absolute_hours", "cookie_secure", "cookie_samesite",
               "login_max_failures", "login_window_minutes", "overdue_days", "assets_dir",
               "trusted_proxies", "oidc"}
    for key in web:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
    listen = _typed(web, "listen", str, where) or "127.0.0.1:8080"
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ConfigError(f"{where}.listen{cfg.set_by('web.listen')}: must be HOST:PORT "
                          f"(e.g. 127.0.0.1:8080), not {listen!r}")
    samesite = (_typed(web, "cookie_samesite", str, where) or "lax").lower()
    if samesite not in ("lax", "strict"):
        raise ConfigError(f"{where}.cookie_samesite: must be 'lax' or 'strict', not {samesite!r}")
    secure = _typed(web, "cookie_secure", bool, where)
    assets = _typed(web, "assets_dir", str, where)
    base = Path(cfg.source).parent if cfg.source else Path.cwd()
    assets_dir = (base / assets).resolve() if assets else DEFAULT_ASSETS
    public_url = _typed(web, "public_url", str, where)
    if public_url and not public_url.startswith(("https://", "http://")):
        raise ConfigError(f"{where}.public_url: must start with https://, not {public_url!r}")
    oidc = _oidc(web.get("oidc"), f"{source}: [web.oidc]", base)
    if oidc is not None and not public_url:
        raise ConfigError(f"{where}.public_url: is needed with [web.oidc] (the redirect address)")
    idle = _positive(web, "session_idle_minutes", where, 30)
    absolute = _positive(web, "session_absolute_hours", where, 12)
    if idle > absolute * 60:
        raise ConfigError(f"{where}.session_idle_minutes: {idle} is longer than "
                          f"session_absolute_hours ({absolute} h)")
    return WebSettings(
        enabled=bool(_typed(web, "enabled", bool, where)),
        host=host.strip("[]"), port=int(port_text), public_url=public_url.rstrip("/") if public_url else None,
        session_idle_minutes=idle, session_absolute_hours=absolute,
        cookie_secure=True if secure is None else secure, cookie_samesite=samesite,
        login_max_failures=_positive(web, "login_max_failures", where, 5),
        login_window_minutes=_positive(web, "login_window_minutes", where, 15),
        overdue_days=_positive(web, "overdue_days", where, 30),
        assets_dir=assets_dir,
        trusted_proxies=_typed(web, "trusted_proxies", str, where) or "",
        oidc=oidc,
    )


def _oidc(table: Any, where: str, base: Path) -> OidcSettings | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: must be a table")
    allowed = {"issuer", "client_id", "client_secret_file", "username_claim", "scopes", "label",
               "tenant_id", "token_endpoint_auth_method"}
    for key in table:
        if key not in allowed:
            raise ConfigError(f"{where}: unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
    values: dict[str, str] = {}
    for key in ("issuer", "client_id", "client_secret_file"):
        value = _typed(table, key, str, where)
        if not value:
            raise ConfigError(f"{where}.{key}: is required")
        values[key] = value
    issuer = values["issuer"]
    parts = urlsplit(issuer)
    if parts.scheme != "https" and not (parts.scheme == "http" and parts.hostname in LOOPBACK):
        raise ConfigError(f"{where}.issuer: must be an https:// address, not {issuer!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{where}.issuer: must have no query or fragment, not {issuer!r}")
    first = parts.path.strip("/").split("/")[0].lower()
    if first in MULTI_TENANT:
        raise ConfigError(
            f"{where}.issuer: {issuer!r} is a multi-tenant endpoint ({first}), which would let "
            "people from any organisation present tokens; use your tenant's own issuer, "
            "https://login.microsoftonline.com/TENANT-ID/v2.0")
    tenant_id = None
    if match := _ENTRA_PATH.match(parts.path):
        tenant_id = match.group(1).lower()
    elif (parts.hostname or "").endswith(ENTRA_HOSTS):
        raise ConfigError(
            f"{where}.issuer: an Entra ID issuer is https://login.microsoftonline.com/"
            f"TENANT-ID/v2.0 (your directory's ID, the v2.0 endpoint), not {issuer!r}")
    configured_tenant = _typed(table, "tenant_id", str, where)
    if configured_tenant is not None:
        if not re.fullmatch(_GUID, configured_tenant):
            raise ConfigError(f"{where}.tenant_id: must be a directory (tenant) ID, a GUID, "
                              f"not {configured_tenant!r}")
        if tenant_id is not None and configured_tenant.lower() != tenant_id:
            raise ConfigError(f"{where}.tenant_id: {configured_tenant!r} is not the tenant in "
                              f"the issuer ({tenant_id})")
        tenant_id = configured_tenant.lower()
    method = _typed(table, "token_endpoint_auth_method", str, where) or ""
    if method not in ("", "client_secret_basic", "client_secret_post"):
        raise ConfigError(f"{where}.token_endpoint_auth_method: must be client_secret_basic or "
                          f"client_secret_post, not {method!r}")
    secret_path = Path(values["client_secret_file"])
    if not secret_path.is_absolute():
        secret_path = base / secret_path
    try:
        secret = secret_path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{where}.client_secret_file: {secret_path}: {exc.strerror}") from exc
    if not secret:
        raise ConfigError(f"{where}.client_secret_file: {secret_path} is empty")
    optional = {k: v for k in ("username_claim", "scopes", "label")
                if (v := _typed(table, k, str, where))}
    claim = optional.get("username_claim", "preferred_username")
    if tenant_id is not None and claim not in ENTRA_USERNAME_CLAIMS:
        raise ConfigError(
            f"{where}.username_claim: {claim!r} cannot name users from Entra ID (the email "
            "claim is not verified by the tenant: anyone able to set an address could sign in "
            f"as its owner); use one of {', '.join(ENTRA_USERNAME_CLAIMS)}")
    if "openid" not in optional.get("scopes", "openid").split():
        raise ConfigError(f"{where}.scopes: must include openid, not {optional['scopes']!r}")
    return OidcSettings(issuer=issuer.rstrip("/"), client_id=values["client_id"],
                        client_secret=secret, tenant_id=tenant_id,
                        token_endpoint_auth_method=method, **optional)
