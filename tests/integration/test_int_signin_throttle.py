"""Sign-in throttling under real concurrency (issue 11, item 10), on SQLite and PostgreSQL:
the attempt is written down before the password is checked, so 60 simultaneous tries against a
limit of 5 make at most 5 password checks, however the threads interleave."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import select
from starlette.requests import Request
from web_support import cheap_hashing, web_config

from retentiond.lifecycle.context import Context
from retentiond.registry.models import AuditEvent
from retentiond.web import auth
from retentiond.web.accounts import add_user
from retentiond.web.app import create_app

PASSWORD = "the right password, long enough"
TRIES = 60
LIMIT = 5
ROUNDS = 3


@pytest.fixture
def app(ctx: Context, database_url: str, tmp_path: Path) -> Iterator[FastAPI]:
    cheap_hashing()
    yield create_app(web_config(database_url, tmp_path, login_max_failures=LIMIT),
                     policy=ctx.policy, clock=ctx.clock, sessions=ctx.sessions)


def _request(app: FastAPI, client: str) -> Request:
    """The request a form POST makes, as far as sign-in reads it (its app and its client)."""
    return Request({"type": "http", "app": app, "client": (client, 50000), "headers": [],
                    "method": "POST", "path": "/login", "query_string": b""})


def _outcomes(ctx: Context, username: str) -> Counter[str]:
    with ctx.sessions() as session:
        rows = session.execute(select(AuditEvent.kind, AuditEvent.data).where(
            AuditEvent.entity == "user", AuditEvent.entity_id == username))
        return Counter(kind if kind != "SignInFailed" else f"SignInFailed:{data['why']}"
                       for kind, data in rows)


def _storm(app: FastAPI, username: str, passwords: list[str],
           clients: list[str]) -> list[auth.SignIn]:
    """Every try at once: the threads wait on one barrier, then all sign in."""
    barrier = threading.Barrier(len(passwords))
    results: list[auth.SignIn | BaseException] = [auth.SignIn()] * len(passwords)

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            results[i] = auth.password_sign_in(_request(app, clients[i]), username, passwords[i])
        except BaseException as exc:  # reported below, with its thread's index
            results[i] = exc

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(len(passwords))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    return [r for r in results if isinstance(r, auth.SignIn)]


def test_sixty_concurrent_wrong_passwords_make_at_most_five_checks(ctx: Context,
                                                                   app: FastAPI) -> None:
    """60 simultaneous wrong passwords for one user name, from one address and from many:
    at most 5 are checked (each a SignInFailed), every other one is throttled; repeated."""
    for n in range(ROUNDS):
        username = f"officer{n}"
        add_user(ctx, username=username, roles="ig_officer", password=PASSWORD)
        clients = ["192.0.2.10"] * TRIES if n % 2 == 0 else [f"192.0.2.{i}" for i in range(TRIES)]
        results = _storm(app, username, ["a wrong password!"] * TRIES, clients)
        outcomes = _outcomes(ctx, username)
        checked = outcomes["SignInFailed:wrong user name or password"]
        assert checked <= LIMIT, (n, outcomes)
        assert checked + outcomes["SignInThrottled"] == TRIES, (n, outcomes)
        assert all(r.token is None for r in results)


def test_the_right_password_in_a_storm_opens_one_session_and_few_checks(
        ctx: Context, app: FastAPI) -> None:
    """The right password sent with 59 wrong ones at once: one session at most, and at most 5
    checks before it and 5 after it (a success starts the user name's count again)."""
    for n in range(ROUNDS):
        username = f"approver{n}"
        add_user(ctx, username=username, roles="approver", password=PASSWORD)
        passwords = ["a wrong password!"] * (TRIES - 1) + [PASSWORD]
        results = _storm(app, username, passwords, [f"198.51.100.{n}"] * TRIES)
        outcomes = _outcomes(ctx, username)
        checks = outcomes["SignInFailed:wrong user name or password"] + outcomes["UserSignedIn"]
        assert checks <= 2 * LIMIT, (n, outcomes)
        assert outcomes["UserSignedIn"] == sum(1 for r in results if r.token is not None) <= 1
