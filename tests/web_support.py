"""Shared set-up for the web tests: a seeded registry, one user per role, the app."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy import select

from retentiond.clock import FixedClock
from retentiond.config import Config
from retentiond.demo import load_demo
from retentiond.lifecycle.context import Context
from retentiond.lifecycle.evaluate import evaluate
from retentiond.policy import PolicySet
from retentiond.registry.db import make_engine, session_factory
from retentiond.registry.models import Controller
from retentiond.web.accounts import add_user
from retentiond.web.sessions import create_token

PASSWORD = "correct horse battery staple"
#: user name -> (roles, controller)
USERS = {
    "admin": ("admin", None),
    "officer": ("ig_officer", None),
    "approver1": ("approver", None),
    "approver2": ("approver", None),
    "auditor": ("auditor", None),
    "school1": ("controller", "DEMO-SCH-01"),
    "school2": ("controller", "DEMO-SCH-02"),
    "feeder1": ("feeder", None),
}
ROLE_USER = {"admin": "admin", "ig_officer": "officer", "approver": "approver1",
             "auditor": "auditor", "controller": "school1", "feeder": "feeder1"}


@dataclass
class Estate:
    """A seeded registry: its URL, a context, the API token of every user."""

    url: str
    ctx: Context
    tokens: dict[str, str]

    def controller_id(self, code: str) -> int:
        with self.ctx.sessions() as session:
            found = session.scalar(select(Controller.id).where(Controller.code == code))
        assert found is not None
        return found


def seed(url: str, policy: PolicySet, clock: FixedClock, *, records: int = 400) -> Estate:
    """Demo data, one evaluation (so there are pending cases), a user and token per role."""
    cheap_hashing()
    ctx = Context(sessions=session_factory(make_engine(url)), policy=policy, clock=clock,
                  actor="test.setup")
    load_demo(ctx, records=records, seed=7)
    evaluate(ctx, clock.today())
    tokens = {}
    for name, (roles, controller) in USERS.items():
        add_user(ctx, username=name, roles=roles, controller=controller,
                 password=None if roles == "feeder" else PASSWORD)  # a feeder has tokens only
        # Each user makes their own token: nobody can make one for someone else.
        tokens[name] = create_token(dataclasses.replace(ctx, actor=name), name,
                                    name=f"{name} tests")
    return Estate(url=url, ctx=ctx, tokens=tokens)


@contextmanager
def app_client(estate: Estate, policy: PolicySet, clock: FixedClock, tmp: Path,
               **web: object) -> Iterator[TestClient]:
    """A test client of the app on ``estate``'s registry (``web``: more of [web])."""
    from retentiond.web.app import create_app

    app = create_app(web_config(estate.url, tmp, **web), policy=policy, clock=clock,
                     sessions=estate.ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def web_config(url: str, tmp: Path, *, secure: bool = True, **web: object) -> Config:
    """A configuration for the app: the registry and a [web] section."""
    return Config(source=str(tmp / "retentiond.toml"), database_url=url,
                  raw={"web": {"cookie_secure": secure, **web}}, pseudonym_key=b"k" * 32)


@contextmanager
def serve_app(estate: Estate, policy: PolicySet, clock: FixedClock, tmp: Path,
                **web: object) -> Iterator[TestClient]:
    """The app on the estate's registry, behind a test client on https://testserver."""
    from retentiond.web.app import create_app

    app = create_app(web_config(estate.url, tmp, **web), policy=policy, clock=clock,
                     sessions=estate.ctx.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def today_plus(clock: FixedClock, days: int) -> dt.date:
    return clock.today() + dt.timedelta(days=days)


def cheap_hashing() -> None:
    """Argon2 at its lowest cost, so that tests that add many users stay fast (production
    keeps argon2-cffi's defaults)."""
    from argon2 import PasswordHasher

    from retentiond.web import accounts

    accounts._hasher = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    accounts._DUMMY_HASH = accounts._hasher.hash("retentiond-no-such-user")


def sign_in(c: TestClient, username: str, password: str = PASSWORD) -> str:
    """Sign in through the form, as a browser would; return the session's CSRF token (from a
    page)."""
    c.cookies.clear()
    page = c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    r = c.post("/login", data={"username": username, "password": password,
                               "csrf_token": token.group(1), "next": "/account"},
               follow_redirects=False)
    assert r.status_code == 303, r.text[:500]
    account = c.get("/account")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', account.text)
    assert csrf is not None, f"{username} could not sign in"
    return csrf.group(1)


#: The name the review-service tests know it by.
form_sign_in = sign_in
