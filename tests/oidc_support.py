"""A real OpenID Provider for the sign-in tests: panva's ``oidc-provider`` (OpenID Certified)
run by Node from ``tests/oidc_provider`` (``./dev test`` installs it with ``npm ci``).

Tests that need it skip with the reason where node or the installed package is missing,
except when ``RETENTIOND_REQUIRE_NODE=1`` (set by ``.ci/run``), where they fail instead.

The provider is set up as an Entra ID tenant looks from outside: a tenant-specific issuer
``http://127.0.0.1:PORT/TENANT-GUID/v2.0``, a ``tid`` claim, keys shared by every tenant on
the server, a confidential client with PKCE required. Accounts and their claims are
synthetic (Faker en_GB).
"""

from __future__ import annotations

import json
import os
import re
import select
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from faker import Faker
from joserfc.jwk import ECKey, RSAKey

ROOT = Path(__file__).resolve().parent.parent
PROVIDER_DIR = ROOT / "tests" / "oidc_provider"
REQUIRE_NODE = os.environ.get("RETENTIOND_REQUIRE_NODE") == "1"
CLIENT_ID = "3f2b9c1e-7d4a-4e8b-9a61-5c0d2e7f1a93"   # synthetic, like an Entra app id
#: A secret with characters that client_secret_basic must form-encode (RFC 6749 2.3.1).
CLIENT_SECRET = "Xq8~tR.4+z%2Fk/9_pL=wE!"
PASSWORD = "provider password 1"


def node_reason() -> str | None:
    """Why the provider cannot run here, or None."""
    if shutil.which("node") is None:
        return "node is missing (install Node.js 20+ and npm, then ./dev test)"
    if not (PROVIDER_DIR / "node_modules" / "oidc-provider").is_dir():
        return f"oidc-provider is not installed in {PROVIDER_DIR} (./dev test runs npm ci there)"
    return None


def require_provider() -> None:
    """Skip (or, with RETENTIOND_REQUIRE_NODE=1, fail) when the provider cannot run."""
    reason = node_reason()
    if reason is not None:
        if REQUIRE_NODE:
            pytest.fail(f"{reason} (RETENTIOND_REQUIRE_NODE=1: the OpenID provider tests are "
                        "mandatory)")
        pytest.skip(reason)


def signing_keys(*algs: str) -> dict[str, Any]:
    """Fresh private signing keys, one per algorithm (RS256 first: the default)."""
    keys = []
    for alg in algs or ("RS256",):
        kid = f"{alg.lower()}-{uuid.uuid4().hex[:8]}"
        params = {"kid": kid, "alg": alg, "use": "sig"}
        key = (ECKey.generate_key("P-256", parameters=params) if alg == "ES256"
               else RSAKey.generate_key(2048, parameters=params))
        keys.append(key.as_dict(private=True))
    return {"keys": keys}


@dataclass
class Account:
    login: str
    claims: dict[str, Any]
    password: str = PASSWORD


def account(fake: Faker, tenant: str, **claims: Any) -> Account:
    """A synthetic person as Entra ID describes them: name, UPN-like preferred_username, oid."""
    first, last = fake.first_name(), fake.last_name()
    upn = f"{first}.{last}@council.example".lower()
    base = {"name": f"{first} {last}", "preferred_username": upn, "upn": upn,
            "email": upn, "oid": str(uuid.uuid4()), "tid": tenant}
    return Account(login=upn, claims=base | claims)


@dataclass
class Tenant:
    tenant_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    accounts: list[Account] = field(default_factory=list)
    entra_like: bool = True      # claims in the ID token, no userinfo (as Entra ID)
    trailing_slash: bool = False
    path: str = ""

    def __post_init__(self) -> None:
        self.path = self.path or f"/{self.tenant_id}/v2.0"


@dataclass
class RunningProvider:
    port: int
    issuers: list[str]
    config: dict[str, Any]

    @property
    def issuer(self) -> str:
        return self.issuers[0]


def client(redirect_uris: list[str], *, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET,
           auth_method: str = "client_secret_basic", alg: str = "RS256") -> dict[str, Any]:
    return {"client_id": client_id, "client_secret": secret, "redirect_uris": redirect_uris,
            "grant_types": ["authorization_code"], "response_types": ["code"],
            "token_endpoint_auth_method": auth_method, "id_token_signed_response_alg": alg}


@contextmanager
def openid_provider(workdir: Path, *, tenants: list[Tenant], clients: list[dict[str, Any]],
                    jwks: dict[str, Any] | None = None, port: int = 0) -> Iterator[RunningProvider]:
    """Run the provider as a subprocess on loopback; stop it on the way out."""
    require_provider()
    config = {
        "port": port,
        "jwks": jwks or signing_keys("RS256", "ES256"),
        "clients": clients,
        "tenants": [{"path": t.path, "tenant_id": t.tenant_id, "entra_like": t.entra_like,
                     "trailing_slash": t.trailing_slash,
                     "accounts": {a.login: {"password": a.password, "claims": a.claims}
                                  for a in t.accounts}} for t in tenants],
    }
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"op-{uuid.uuid4().hex[:8]}.json"
    path.write_text(json.dumps(config))
    log = (workdir / f"{path.stem}.log").open("w")
    proc = subprocess.Popen([shutil.which("node") or "node", str(PROVIDER_DIR / "server.mjs"),
                             str(path)], cwd=PROVIDER_DIR, stdout=subprocess.PIPE, stderr=log,
                            text=True)
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        if not line:
            proc.kill()
            proc.wait()
            log.close()
            raise RuntimeError(f"the OpenID provider did not start: "
                               f"{(workdir / f'{path.stem}.log').read_text()[-2000:]}")
        started = json.loads(line)
        yield RunningProvider(port=started["port"], issuers=started["issuers"], config=config)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()


_FORM = re.compile(r'<form method="post" action="([^"]+)"')


def log_in_at_provider(authorize_url: str, login: str, password: str = PASSWORD, *,
                       returns_to: str) -> str:
    """Go through the provider's own sign-in and consent pages as a browser would (cookies,
    redirects, forms); return the address it sends the browser back to (``returns_to``...)."""
    with httpx.Client(timeout=10) as browser:
        url, response = authorize_url, browser.get(authorize_url)
        for _ in range(12):
            if response.is_redirect:
                url = urljoin(url, response.headers["location"])
                if url.startswith(returns_to):
                    return url
                response = browser.get(url)
                continue
            response.raise_for_status()
            form = _FORM.search(response.text)
            assert form, f"no form on the provider's page {url}: {response.text[:500]}"
            action = urljoin(url, unescape(form.group(1)))
            data = {"login": login, "password": password} if "/login" in action else {}
            url, response = action, browser.post(action, data=data)
            if not response.is_redirect and "wrong" in response.text:
                raise AssertionError(f"the provider refused {login}'s password")
        raise AssertionError(f"the provider never sent the browser back to {returns_to}")
