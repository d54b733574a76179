"""Look-alike people (issue 11, item 4), on SQLite and PostgreSQL: ``APPROVER1``, a
full-width ``approver1`` or ``approver1`` with a zero-width space cannot be created beside
``approver1``, by the accounts code or around it (a unique key in the database); sign-in is
by the method the user was created with, never the other; migration 0010 keys existing users
and refuses, changing nothing, when two of them collide."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError
from web_support import cheap_hashing, web_config

from retentiond.lifecycle.context import Context, LifecycleError
from retentiond.registry.db import current_revision, make_engine, upgrade
from retentiond.registry.models import AuditEvent, WebUser
from retentiond.web.accounts import add_user, list_users, reset_password
from retentiond.web.app import create_app

PASSWORD = "a long enough password"

TWINS = [
    ("APPROVER1", "exists already (as 'approver1')"),
    ("Approver1", "exists already (as 'approver1')"),
    ("ａｐｐｒｏｖｅｒ１", "user 'approver1' exists already"),
    ("approver1\u200b", "U+200B (ZERO WIDTH SPACE)"),
    ("\u0430pprover1", "letters must all be of one script"),
    ("approver1 ", None),  # trimmed: the same name, so it exists already
]


@pytest.fixture
def people(ctx: Context) -> Context:
    cheap_hashing()
    add_user(ctx, username="approver1", roles="approver", password=PASSWORD)
    return ctx


@pytest.mark.parametrize(("name", "said"), TWINS, ids=[repr(n) for n, _ in TWINS])
def test_a_look_alike_of_an_existing_user_is_refused(people: Context, name: str,
                                                     said: str | None) -> None:
    """Case, width, invisible characters and mixed scripts cannot make a second approver1."""
    with pytest.raises(LifecycleError) as err:
        add_user(people, username=name, roles="approver", password=PASSWORD)
    assert said is None or said in str(err.value), str(err.value)
    assert "exists already" in str(err.value) or said is not None
    assert [u.username for u in list_users(people)] == ["approver1"]


def test_the_database_refuses_a_twin_written_around_the_code(people: Context) -> None:
    """The unique key holds even for a row written without ``add_user``."""
    with pytest.raises(IntegrityError), people.sessions.begin() as session:
        now = people.clock.now()
        session.add(WebUser(username="APPROVER1", username_key="approver1",
                            auth_method="password", roles="approver", password_hash=None,
                            created_at=now, updated_at=now))


def test_users_list_says_how_each_signs_in(people: Context) -> None:
    """``auth_method`` is in the JSON of ``users list``; an OIDC user has no password to reset."""
    add_user(people, username="k.lee@council.example", roles="auditor", password=None)
    assert {u.username: u.as_json()["auth_method"] for u in list_users(people)} == {
        "approver1": "password", "k.lee@council.example": "oidc"}
    with pytest.raises(LifecycleError, match="signs in through OpenID Connect"):
        reset_password(people, "K.Lee@council.example", "another long password")


@pytest.fixture
def site(people: Context, database_url: str, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(web_config(database_url, tmp_path, login_max_failures=3),
                     policy=people.policy, clock=people.clock, sessions=people.sessions)
    with TestClient(app, base_url="https://testserver") as c:
        yield c


def _sign_in(c: TestClient, username: str, password: str) -> int:
    c.cookies.clear()
    page = c.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    return c.post("/login", data={"username": username, "password": password,
                                  "csrf_token": token.group(1)},
                  follow_redirects=False).status_code


def test_an_oidc_user_cannot_sign_in_with_a_password(people: Context, site: TestClient) -> None:
    """A user created for OpenID Connect is refused by the password form, even if a hash was
    put in their row, and the refusal is audited with the reason."""
    from retentiond.web.accounts import hash_password

    add_user(people, username="officer.oidc", roles="ig_officer", password=None)
    with people.sessions.begin() as session:
        user = session.scalar(select(WebUser).where(WebUser.username == "officer.oidc"))
        assert user is not None
        user.password_hash = hash_password(PASSWORD)
    assert _sign_in(site, "officer.oidc", PASSWORD) == 400
    assert site.get("/api/v1/me").status_code == 401
    with people.sessions() as session:
        why = session.scalar(select(AuditEvent.data).where(AuditEvent.kind == "SignInFailed"))
    assert why == {"method": "password",
                   "why": "not a password user: signs in through OpenID Connect"}


def test_a_name_typed_in_another_case_is_the_same_user_and_the_same_throttle(
        people: Context, site: TestClient) -> None:
    """``APPROVER1`` signs in as approver1; failures under every spelling count together, so
    case cannot multiply the tries."""
    assert _sign_in(site, "APPROVER1", PASSWORD) == 303
    assert site.get("/api/v1/me").json()["username"] == "approver1"
    people.clock.instant += dt.timedelta(minutes=1)  # type: ignore[attr-defined]
    for spelling in ("approver1", "Approver1", "ＡＰＰＲＯＶＥＲ１"):
        assert _sign_in(site, spelling, "wrong password!!") == 400
    page_status = _sign_in(site, "approver1", PASSWORD)
    assert page_status == 400
    with people.sessions() as session:
        kinds = list(session.scalars(select(AuditEvent.kind).where(
            AuditEvent.kind.like("SignIn%")).order_by(AuditEvent.id)))
    assert kinds[-1] == "SignInThrottled"


def _before_0010(database_url: str, tmp_path: Path, pg_admin: object | None) -> str:
    """An empty database migrated to 0009 (the revision before user keys)."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'old.db'}"
    else:
        name = f"retentiond_m_{uuid.uuid4().hex[:12]}"
        with pg_admin.connect() as conn:  # type: ignore[attr-defined]
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = database_url.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(url)
    upgrade(engine, "0009")
    engine.dispose()
    return url


def _insert_users(url: str, *names_and_hashes: tuple[str, str | None]) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        for name, password_hash in names_and_hashes:
            conn.execute(text(
                "INSERT INTO web_users (username, roles, password_hash, created_at, updated_at) "
                "VALUES (:u, 'approver', :h, :t, :t)"),
                {"u": name, "h": password_hash, "t": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)})
    engine.dispose()


@pytest.fixture
def old_database(request: pytest.FixtureRequest, database_url: str,
                 tmp_path: Path) -> Iterator[str]:
    admin = None if database_url.startswith("sqlite") else request.getfixturevalue("pg_admin")
    url = _before_0010(database_url, tmp_path, admin)
    yield url
    if admin is not None:
        with admin.connect() as conn:  # type: ignore[attr-defined]
            conn.execute(text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))


def test_migration_refuses_colliding_users_and_changes_nothing(old_database: str) -> None:
    """Two existing users whose names differ only in case or an invisible character: the
    upgrade stops naming them and leaves the database at 0009; renamed, it goes through and
    keeps each user's way of signing in."""
    _insert_users(old_database, ("approver1", "$argon2id$hash"), ("APPROVER1", None),
                  ("approver2", "$argon2id$hash"), ("approver2\u200b", None), ("k.lee", None))
    engine = make_engine(old_database)
    try:
        with pytest.raises(RuntimeError) as err:
            upgrade(engine)
        message = str(err.value)
        # repr: the invisible character is shown, as \u200b
        assert "'approver1', 'APPROVER1'" in message and "'approver2', 'approver2\\u200b'" in message
        assert "Nothing was changed" in message
        assert current_revision(engine) == "0009"
        with engine.connect() as conn:
            columns = {c["name"] for c in inspect(conn).get_columns("web_users")}
        assert "username_key" not in columns and "auth_method" not in columns
        with engine.begin() as conn:
            conn.execute(text("UPDATE web_users SET username = 'approver1.old' "
                              "WHERE username = 'APPROVER1'"))
            conn.execute(text("UPDATE web_users SET username = 'approver2.old' "
                              "WHERE password_hash IS NULL AND username != 'approver2' "
                              "AND username LIKE 'approver2%'"))
        upgrade(engine)
        with engine.connect() as conn:
            rows = dict(conn.execute(text(
                "SELECT username, username_key || ':' || auth_method FROM web_users")).all())
    finally:
        engine.dispose()
    assert rows == {"approver1": "approver1:password", "approver1.old": "approver1.old:oidc",
                    "approver2": "approver2:password", "approver2.old": "approver2.old:oidc",
                    "k.lee": "k.lee:oidc"}


def test_cli_users_add_refuses_a_look_alike(tmp_path: Path, sqlite_template: Path) -> None:
    """``retentiond users add APPROVER1`` beside approver1 fails with the reason, exit 1."""
    import os
    import subprocess
    import sys

    shutil.copy(sqlite_template, tmp_path / "r.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RETENTIOND_")}
    env.update({"RETENTIOND_DATABASE_URL": f"sqlite:///{tmp_path / 'r.db'}", "HOME": str(tmp_path),
                "RETENTIOND_LOG_LEVEL": "warning"})

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "retentiond.cli.main", *args], env=env,
                              input=PASSWORD + "\n", capture_output=True, text=True,
                              timeout=120, check=False)

    assert run("users", "add", "approver1", "--role", "approver").returncode == 0
    for name, said in (("APPROVER1", "exists already (as 'approver1')"),
                       ("approver1\u200b", "U+200B (ZERO WIDTH SPACE)"),
                       ("ａｐｐｒｏｖｅｒ１", "exists already")):
        refused = run("users", "add", name, "--role", "approver")
        assert refused.returncode == 1 and said in refused.stderr, refused.stderr
    listed = run("users", "list", "--format", "json")
    assert '"username": "approver1"' in listed.stdout and listed.stdout.count('"username"') == 1
    assert '"auth_method": "password"' in listed.stdout
