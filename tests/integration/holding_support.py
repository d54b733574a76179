"""Holding databases of every kind the SQL connector is tested against: SQLite, PostgreSQL and
MariaDB (a real server at 127.0.0.1:3306, root, no password; its default collation folds case
and ignores trailing spaces, which is what the locator tests need).

MariaDB tests skip with a reason when no server answers, except when
``RETENTIOND_REQUIRE_MARIADB=1`` (set by ``.ci/run``), where they fail instead."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

MARIADB_ADMIN_URL = os.environ.get("RETENTIOND_TEST_MARIADB_URL",
                                   "mysql+pymysql://root@127.0.0.1:3306/test")
REQUIRE_MARIADB = os.environ.get("RETENTIOND_REQUIRE_MARIADB") == "1"

#: pytest params for a fixture over the three kinds of holding database.
HOLDING_KINDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres), "mariadb"]


def _mariadb_reason() -> str | None:
    try:
        import pymysql  # noqa: F401
    except ImportError:
        return "pymysql is not installed (pip install -e '.[dev]')"
    try:
        engine = create_engine(MARIADB_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure to connect means: no MariaDB here
        return f"MariaDB not reachable at {MARIADB_ADMIN_URL}: {type(exc).__name__}"


def holding_url(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty holding database of ``kind``; dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / f'holding-{uuid.uuid4().hex[:6]}.db'}"
        return
    name = f"holding_{uuid.uuid4().hex[:12]}"
    if kind == "postgresql":
        request.getfixturevalue("pg_admin")
        from conftest import PG_ADMIN_URL
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        create, drop = f'CREATE DATABASE "{name}"', f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
    else:
        reason = _mariadb_reason()
        if reason is not None:
            if REQUIRE_MARIADB:
                pytest.fail(f"{reason} (RETENTIOND_REQUIRE_MARIADB=1: MariaDB tests are "
                            "mandatory)")
            pytest.skip(reason)
        admin = create_engine(MARIADB_ADMIN_URL, isolation_level="AUTOCOMMIT")
        base = MARIADB_ADMIN_URL.rsplit("/", 1)[0]
        create, drop = f"CREATE DATABASE `{name}`", f"DROP DATABASE IF EXISTS `{name}`"
    with admin.connect() as conn:
        conn.execute(text(create))
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(drop))
        admin.dispose()
