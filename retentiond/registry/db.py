"""Connections to the registry and its migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).with_name("migrations")


class SchemaError(RuntimeError):
    """The database is not at the schema this code needs."""


#: The execution option that makes a transaction take the registry's write lock as it begins
#: (set by :func:`write_transaction`).
WRITE_LOCK = "retentiond_write_lock"


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    """Start a write transaction with ``BEGIN IMMEDIATE``: the write lock from the first
    statement, so that what it reads cannot change before it writes.

    The sqlite3 module otherwise opens a transaction only at the first INSERT, UPDATE or
    DELETE; the reads before it run outside any transaction, and four sessions of one approver
    each read "not yet approved by me" and each wrote an approval. Only transactions that ask
    (:func:`write_transaction`) are changed: plain reads keep WAL's readers-never-wait, and
    a deferred transaction cannot fail on a snapshot another writer made stale.
    """
    if conn.get_execution_options().get(WRITE_LOCK):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as psycopg 3 URLs."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for the registry. SQLite files get WAL, foreign keys and a busy timeout."""
    url = normalise_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    if parsed.get_backend_name() != "postgresql":
        raise ValueError(f"unsupported database {parsed.get_backend_name()!r}: use sqlite or postgresql")
    return create_engine(url, pool_pre_ping=True, **kwargs)


def sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL (None for PostgreSQL and ``:memory:``)."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:":
        return None
    return Path(parsed.database).expanduser()


def require_exists(url: str, *, where: str = "") -> None:
    """Refuse a SQLite registry file that is not there, before anything connects to it (which
    would create it): only ``db upgrade`` makes a registry, never a command that reads one."""
    path = sqlite_file(url)
    if path is not None and not path.exists():
        raise SchemaError(f"there is no registry database at {path}{where}: create it with "
                          "'retentiond db upgrade', or set [database] url to the registry")


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that do not expire objects on commit (values stay readable for output), and
    that seal the audit events they write into the hash chain before they commit."""
    from retentiond.registry.chain import install

    install()
    return sessionmaker(engine, expire_on_commit=False)


def write_lock_now(session: Session) -> None:
    """On SQLite, take the database's write lock at once (``BEGIN IMMEDIATE``) instead of at
    the transaction's first write, so that a read-then-write (count, then insert) cannot
    interleave with another's. Call it before the transaction's first statement. Elsewhere a
    no-op: PostgreSQL callers lock rows or take an advisory lock."""
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.dbapi_connection
    if raw is not None and not getattr(raw, "in_transaction", True):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


@contextmanager
def write_transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work that changes the lifecycle: commit on success, roll back on any error.

    On SQLite it holds the database's write lock from its first statement (``BEGIN
    IMMEDIATE``), so writers queue one after another and each sees what the one before it
    committed; ``SELECT ... FOR UPDATE`` does nothing there. On PostgreSQL the row locks the
    lifecycle takes (``FOR UPDATE``) and its guarded updates do that work.
    """
    with factory() as session, session.begin():
        if session.get_bind().dialect.name == "sqlite":
            session.connection(execution_options={WRITE_LOCK: True})
        yield session


def _alembic_config(engine: Engine) -> AlembicConfig:
    # Alembic is imported only where migrations are read: every command pays for imports.
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    """The newest migration this code knows."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_alembic_config(None)).get_current_head()  # type: ignore[arg-type]
    assert head is not None
    return head


def current_revision(engine: Engine) -> str | None:
    """The migration the database is at, or None for an empty database."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision``. On PostgreSQL an advisory lock makes concurrent
    instances run migrations one at a time."""
    from alembic import command

    cfg = _alembic_config(engine)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.exec_driver_sql("SELECT pg_advisory_lock(74210001)")
            try:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                conn.commit()
            finally:
                conn.exec_driver_sql("SELECT pg_advisory_unlock(74210001)")
                conn.commit()
    else:
        command.upgrade(cfg, revision)


def require_current(engine: Engine, *, where: str = "") -> None:
    """Refuse to work on a database that is not migrated to this code's schema."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        url = engine.url.render_as_string(hide_password=True)
        state = ("is empty (it has no schema yet)" if current is None
                 else f"has schema revision {current}")
        raise SchemaError(
            f"the registry database {url}{where} {state}; this version of retentiond needs "
            f"revision {head}: run 'retentiond db upgrade'"
        )


#: Tables whose planner statistics :func:`refresh_statistics` may refresh.
_ANALYZABLE = frozenset({"disposals", "certificate_items", "notifications"})


def refresh_statistics(factory: sessionmaker[Session], *tables: str) -> bool:
    """``ANALYZE`` ``tables`` on PostgreSQL, now; nothing elsewhere. Returns whether it ran.

    For the work that has just moved a large share of the disposals from one state to the
    next (a first day's backlog: 110,000 executed in minutes), before queries that select by
    that state. Until the table is analysed again the planner takes the new state for a rare
    one and reads every row in it through its index where another index would read a few
    (measured: 0.1 s a certificate at 1M records, twice). Autovacuum does this in its own
    time, which may be minutes later, or never where it is off. Refused (the role does not
    own the table): logged, and the work goes on with the statistics it has."""
    from sqlalchemy import text
    from sqlalchemy.exc import DBAPIError

    from retentiond.logs import get_logger

    unknown = set(tables) - _ANALYZABLE
    if unknown:
        raise ValueError(f"refresh_statistics: not a table it refreshes: {sorted(unknown)}")
    with factory() as session:
        if session.get_bind().dialect.name != "postgresql":
            return False
        try:
            with session.begin():
                for table in tables:
                    session.execute(text(f"ANALYZE {table}"))
        except DBAPIError as exc:
            get_logger("retentiond.registry").warning(
                "statistics_not_refreshed", tables=list(tables), error_type=type(exc.orig).__name__)
            return False
    return True
