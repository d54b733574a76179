"""Shared fixtures: a fresh, migrated registry on real SQLite and real PostgreSQL, and holding
databases on PostgreSQL and MariaDB for SQL sources.

PostgreSQL and MariaDB tests skip with a reason when no server answers, except when
``RETENTIOND_REQUIRE_POSTGRES=1`` and ``RETENTIOND_REQUIRE_MARIADB=1`` (set by ``.ci/run``),
where they fail instead.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from retentiond.clock import FixedClock
from retentiond.lifecycle.context import Context
from retentiond.policy import PolicySet, load_policy_set
from retentiond.registry.db import make_engine, session_factory, upgrade

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PACK = ROOT / "policies" / "isa-default.toml"
PG_ADMIN_URL = os.environ.get(
    "RETENTIOND_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("RETENTIOND_REQUIRE_POSTGRES") == "1"
MARIADB_ADMIN_URL = os.environ.get("RETENTIOND_TEST_MARIADB_URL",
                                   "mysql+pymysql://root@127.0.0.1:3306/test")
REQUIRE_MARIADB = os.environ.get("RETENTIOND_REQUIRE_MARIADB") == "1"
#: ``.ci/run`` sets it: a test needing a command the README's set-up installs (poppler's
#: pdftotext and pdfsig) fails where it is missing, instead of skipping.
REQUIRE_TOOLS = os.environ.get("RETENTIOND_REQUIRE_TOOLS") == "1"


def need_tool(name: str, package: str) -> str:
    """The path of command ``name``; skips the test where it is missing (fails in CI)."""
    import shutil

    found = shutil.which(name)
    if found is None:
        reason = f"{name} ({package}) is not installed"
        if REQUIRE_TOOLS:
            pytest.fail(f"{reason} (RETENTIOND_REQUIRE_TOOLS=1: it is mandatory)")
        pytest.skip(reason)
    return found


#: The day the tests pretend it is, unless a test says otherwise.
TODAY = dt.date(2026, 11, 22)


def _pg_reason() -> str | None:
    try:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to connect means: no PostgreSQL here
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {type(exc).__name__}"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Each test starts and ends with the same structlog set-up, whatever it configured."""
    import structlog

    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[object]:
    """An AUTOCOMMIT engine on the PostgreSQL server's maintenance database."""
    reason = _pg_reason()
    if reason is not None:
        if REQUIRE_PG:
            pytest.fail(f"{reason} (RETENTIOND_REQUIRE_POSTGRES=1: PostgreSQL tests are mandatory)")
        pytest.skip(reason)
    engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def _pg_url(name: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


@pytest.fixture(scope="session")
def pg_template(pg_admin: object) -> Iterator[str]:
    """A migrated PostgreSQL database that each test copies (CREATE DATABASE ... TEMPLATE)."""
    name = f"retentiond_tmpl_{uuid.uuid4().hex[:10]}"
    with pg_admin.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(_pg_url(name))
    upgrade(engine)
    engine.dispose()
    yield name
    with pg_admin.connect() as conn:  # type: ignore[attr-defined]
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies."""
    path = tmp_path_factory.mktemp("tmpl") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated registry on each backend; the URL to reach it."""
    if request.param == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "registry.db"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
        return
    admin = request.getfixturevalue("pg_admin")
    template = request.getfixturevalue("pg_template")
    name = f"retentiond_t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    yield _pg_url(name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="session")
def mariadb_admin() -> Iterator[object]:
    """An engine on the MariaDB server (SQL sources read holding databases there). Skips with a
    reason when none answers, except with ``RETENTIOND_REQUIRE_MARIADB=1`` (``.ci/run``)."""
    try:
        engine = create_engine(MARIADB_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to connect means: no MariaDB here
        reason = f"MariaDB not reachable at {MARIADB_ADMIN_URL}: {type(exc).__name__}"
        if REQUIRE_MARIADB:
            pytest.fail(f"{reason} (RETENTIOND_REQUIRE_MARIADB=1: MariaDB tests are mandatory)")
        pytest.skip(reason)
    yield engine
    engine.dispose()


@pytest.fixture(params=[pytest.param("postgresql", marks=pytest.mark.postgres), "mariadb"])
def holding_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh, empty database on PostgreSQL and on MariaDB, standing for a warehouse or an
    MIS holding database that a SQL source reads."""
    name = f"retentiond_src_{uuid.uuid4().hex[:12]}"
    if request.param == "postgresql":
        admin = request.getfixturevalue("pg_admin")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        yield _pg_url(name)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        return
    admin = request.getfixturevalue("mariadb_admin")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    yield f"{MARIADB_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))


@pytest.fixture
def policy() -> PolicySet:
    """The default policy pack (the seed ISA's four rules)."""
    return load_policy_set([DEFAULT_PACK])


@pytest.fixture
def clock() -> FixedClock:
    """A clock fixed at noon on ``TODAY`` in London."""
    return FixedClock(dt.datetime(TODAY.year, TODAY.month, TODAY.day, 12, 0, tzinfo=dt.UTC))


@pytest.fixture
def ctx(database_url: str, policy: PolicySet, clock: FixedClock) -> Iterator[Context]:
    """A lifecycle context on a fresh registry, acting as ``officer.one``."""
    engine = make_engine(database_url)
    yield Context(sessions=session_factory(engine), policy=policy, clock=clock,
                  actor="officer.one")
    engine.dispose()
