"""A throw-away registry on either backend: a file in a temporary directory (SQLite) or a
dedicated database created and dropped through the maintenance database (PostgreSQL)."""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get(
    "RETENTIOND_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)


@contextmanager
def database(backend: str, workdir: Path, *, keep: bool, role: str = "registry",
             log: object = print) -> Iterator[str]:
    """Yield the URL of an empty database; drop it afterwards unless ``keep``. ``role`` names
    it (``registry``, or ``holding`` for the system the connector deletes from)."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir / f'{role}.db'}"
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}")
    name = f"retentiond_bench_{secrets.token_hex(5)}_{role}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
        finally:
            if keep:
                log(f"kept database {name}")  # type: ignore[operator]
            else:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        admin.dispose()


def server_version(backend: str, url: str) -> str:
    """The version of the database engine the figures were taken on."""
    if backend == "sqlite":
        return sqlite3.sqlite_version
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return str(conn.execute(text("SHOW server_version")).scalar())
    finally:
        engine.dispose()
