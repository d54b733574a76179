"""``kind = "sql"``: a record is the rows of one table (and its child tables) with one key.

Any database SQLAlchemy reaches. The URL carries a password, so it is read from a file or a
systemd credential, never from the command line; an inline ``url`` is accepted only when it
has no password (SQLite, or PostgreSQL with peer or trust auth).

A locator names exactly one key value (DESIGN.md section 4, "What a certificate may say"). The
holding database must never be left to coerce it: SQLite and MariaDB compare ``'042'`` equal
to the integer 42, MariaDB's default collations fold case and ignore trailing spaces. So:

- each key column is an ``integer`` or a ``text`` key (reflected from the table, or stated by
  ``key_type``); any other type is refused;
- an integer locator must be the integer's own spelling (``str(int(locator)) == locator``)
  and is sent as an integer; anything else is refused before the database sees it;
- a text locator is compared byte for byte (SQLite: ``CAST(key AS BLOB)``; PostgreSQL:
  ``COLLATE "C"``; MySQL and MariaDB: ``CAST(key AS BINARY)``), beside the plain comparison
  that lets the database use its index;
- every key a delete removed is read back (``RETURNING``, or a locking ``SELECT`` first) and
  must be exactly one of the locators sent; otherwise the whole transaction is rolled back
  and the delete fails, so a comparison this module does not know how to make exact on some
  other database can still never delete another record's rows.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Engine,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    cast,
    create_engine,
    delete,
    event,
    make_url,
    select,
    union,
)
from sqlalchemy.exc import (
    DisconnectionError,
    InterfaceError,
    NoSuchTableError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from retentiond.connectors.base import (
    ConnectorConfigError,
    ConnectorError,
    ConnectorRef,
    Export,
    ExportedTable,
    LocatorRefused,
    PermanentConnectorError,
    RemainingCopy,
    TransientConnectorError,
    identifier,
    option,
    read_secret,
    remaining_option,
)
from retentiond.registry.db import normalise_url

#: Locators per ``IN (...)`` list: well under SQLite's oldest limit of 999 parameters.
CHUNK = 500
KEY_TYPES = ("integer", "text")
#: An integer as Python spells it: no sign but a minus, no leading zero, no space, no point.
_CANONICAL_INT = re.compile(r"-?(?:0|[1-9][0-9]*)")
_INT64 = (-(2 ** 63), 2 ** 63 - 1)


@dataclass(frozen=True)
class KeyedTable:
    """A table and the column that holds the record's locator."""

    table: str
    key_column: str


class KeyMismatch(PermanentConnectorError):
    """A delete removed a row whose key is not exactly one of the locators sent."""


def _sqlite_secure_delete(dbapi_conn: Any, _record: Any) -> None:
    # Deleted content is overwritten with zeros in the database file, not left in free pages.
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


class SqlConnector:
    """Deletes the rows of ``table`` whose ``key_column`` is the record's locator, and the
    rows of each child table first, in one transaction; ``exists`` looks in all of them.

    ``delete_many`` does the same for a batch: per table, children first, one ``DELETE ...
    WHERE key IN (...)`` per 500 locators, all in one transaction; ``exists_many`` checks a
    batch with one ``SELECT`` (a ``UNION`` over the tables) per 500 locators."""

    kind = "sql"

    def __init__(self, name: str, url: str, main: KeyedTable,
                 children: tuple[KeyedTable, ...] = (), *, key_type: str | None = None,
                 backups_kept_days: int | None = None,
                 vacuum_after_delete: bool = False) -> None:
        if key_type is not None and key_type not in KEY_TYPES:
            raise ValueError(f"key_type must be one of {', '.join(KEY_TYPES)}")
        self.name = name
        self.url = normalise_url(url)
        self.main = main
        self.children = children
        self.key_type = key_type
        self.backups_kept_days = backups_kept_days
        self.vacuum_after_delete = vacuum_after_delete
        self._engine: Engine | None = None
        self._tables: dict[str, Table] = {}
        self._kinds: dict[str, tuple[str, int | None]] = {}

    @classmethod
    def from_config(cls, name: str, table: Mapping[str, Any], *, base_dir: Path) -> SqlConnector:
        where = f"[connectors.{name}]"
        url = option(table, "url", str, where)
        if url is not None:
            if make_url(normalise_url(url)).password is not None:
                raise ConnectorConfigError(
                    f"{where}.url: a URL with a password belongs in url_file or url_credential"
                )
            if table.get("url_file") or table.get("url_credential"):
                raise ConnectorConfigError(f"{where}: give url, url_file or url_credential, "
                                           "only one")
        else:
            url = read_secret(table, "url", where, base_dir=base_dir)
        assert url is not None
        main = KeyedTable(identifier(option(table, "table", str, where, required=True),
                                     f"{where}.table"),
                          identifier(option(table, "key_column", str, where, required=True),
                                     f"{where}.key_column"))
        children = []
        for i, child in enumerate(option(table, "children", list, where, default=[])):
            cw = f"{where}.children[{i}]"
            if not isinstance(child, dict):
                raise ConnectorConfigError(f"{cw}: must be a table {{ table = ..., key_column = ... }}")
            children.append(KeyedTable(
                identifier(option(child, "table", str, cw, required=True), f"{cw}.table"),
                identifier(option(child, "key_column", str, cw, required=True), f"{cw}.key_column"),
            ))
        key_type = option(table, "key_type", str, where)
        if key_type is not None and key_type not in KEY_TYPES:
            raise ConnectorConfigError(f"{where}.key_type: must be one of {', '.join(KEY_TYPES)}")
        try:
            parsed = make_url(normalise_url(url))
        except Exception as exc:
            raise ConnectorConfigError(f"{where}: the database URL is not a SQLAlchemy URL") from exc
        vacuum = option(table, "vacuum_after_delete", bool, where, default=False)
        if vacuum and parsed.get_backend_name() != "postgresql":
            raise ConnectorConfigError(f"{where}.vacuum_after_delete: only for PostgreSQL "
                                       "holding databases")
        return cls(name, url, main, tuple(children), key_type=key_type,
                   backups_kept_days=remaining_option(table, "backups_kept_days", where),
                   vacuum_after_delete=vacuum)

    # --- plumbing -----------------------------------------------------------------------------

    @property
    def backend(self) -> str:
        return make_url(self.url).get_backend_name()

    def _get_engine(self) -> Engine:
        if self._engine is None:
            kwargs: dict[str, Any] = {"pool_pre_ping": True}
            if self.backend == "sqlite":
                kwargs = {"connect_args": {"timeout": 30}}
            self._engine = create_engine(self.url, **kwargs)
            if self.backend == "sqlite":
                event.listen(self._engine, "connect", _sqlite_secure_delete)
        return self._engine

    def _table(self, name: str) -> Table:
        if name not in self._tables:
            schema, _, bare = name.rpartition(".")
            self._tables[name] = Table(bare, MetaData(), schema=schema or None,
                                       autoload_with=self._get_engine())
        return self._tables[name]

    def _keyed(self) -> list[KeyedTable]:
        # Children first: their foreign keys point at the main table.
        return [*self.children, self.main]

    def _guard(self, what: str, exc: Exception) -> Exception:
        """Map a database error to the connector's error classes, without the SQL text or
        its parameters (which hold the locator)."""
        kind = type(exc).__name__
        if isinstance(exc, OperationalError | InterfaceError | DisconnectionError | PoolTimeout):
            return TransientConnectorError(f"{self.name}: {what} failed: database unavailable "
                                           f"({kind})")
        if isinstance(exc, NoSuchTableError):
            return PermanentConnectorError(f"{self.name}: {what} failed: no table {exc}")
        return PermanentConnectorError(f"{self.name}: {what} failed: {kind}")

    def _column(self, keyed: KeyedTable) -> Any:
        t = self._table(keyed.table)
        if keyed.key_column not in t.c:
            raise PermanentConnectorError(
                f"{self.name}: table {keyed.table} has no column {keyed.key_column}"
            )
        return t.c[keyed.key_column]

    def _kind(self, keyed: KeyedTable) -> tuple[str, int | None]:
        """The key column's kind (``integer`` or ``text``) and, for text, its length limit."""
        if keyed.table not in self._kinds:
            col = self._column(keyed)
            if isinstance(col.type, Integer):
                found: tuple[str, int | None] = ("integer", None)
            elif isinstance(col.type, String):
                found = ("text", getattr(col.type, "length", None))
            else:
                raise PermanentConnectorError(
                    f"{self.name}: {keyed.table}.{keyed.key_column} is of type {col.type}: only "
                    "integer and text keys can be matched exactly")
            if self.key_type is not None and found[0] != self.key_type:
                raise PermanentConnectorError(
                    f"{self.name}: key_type is {self.key_type!r} but {keyed.table}."
                    f"{keyed.key_column} is an {found[0]} column")
            self._kinds[keyed.table] = found
        return self._kinds[keyed.table]

    def _kinds_for_check(self) -> list[tuple[str, int | None]]:
        """The kinds a locator must fit: stated by ``key_type`` (no connection needed), or
        read from the tables."""
        if self.key_type is not None and not self._kinds:
            return [(self.key_type, None)]
        database = make_url(self.url).database
        if self.backend == "sqlite" and database and database != ":memory:" \
                and not Path(database).is_file():
            # Connecting would create an empty file where the holding database should be.
            raise TransientConnectorError(f"{self.name}: locator check failed: the holding "
                                          "database file does not exist")
        try:
            return [self._kind(k) for k in self._keyed()]
        except SQLAlchemyError as exc:
            raise self._guard("locator check", exc) from exc

    @staticmethod
    def _problem(kind: str, length: int | None, locator: str) -> str | None:
        if kind == "integer":
            if not _CANONICAL_INT.fullmatch(locator):
                return ("not an integer key as written by the holding system (digits only, "
                        "no leading zeros, spaces, plus sign, point or exponent)")
            if not _INT64[0] <= int(locator) <= _INT64[1]:
                return "an integer key out of range"
            return None
        if not locator or "\x00" in locator:
            return "empty, or a NUL in it"
        if locator != locator.strip():
            return "spaces before or after the key"
        if length is not None and len(locator) > length:
            return f"longer than the key column ({length} characters)"
        return None

    def validate_locator(self, locator: str) -> str | None:
        """Why this connector cannot name ``locator`` exactly, or None when it can. May raise
        a :class:`ConnectorError` when the holding database must be read and cannot be."""
        for kind, length in self._kinds_for_check():
            problem = self._problem(kind, length, locator)
            if problem is not None:
                return f"{self.name}: {problem}"
        return None

    def _values(self, keyed: KeyedTable, locators: Sequence[str]) -> list[Any]:
        """The locators as the key column's values, each checked to name one key exactly."""
        kind, length = self._kind(keyed)
        for loc in locators:
            problem = self._problem(kind, length, loc)
            if problem is not None:
                raise LocatorRefused(f"{self.name}: locator refused: {problem}")
        return [int(loc) for loc in locators] if kind == "integer" else list(locators)

    def _match(self, keyed: KeyedTable, values: list[Any]) -> ColumnElement[bool]:
        """``key IN (values)``, exact: no coercion, no collation folding or padding."""
        col = self._column(keyed)
        plain: ColumnElement[bool] = col.in_(values)
        if self._kind(keyed)[0] == "integer":
            return plain
        backend = self.backend
        if backend in ("sqlite", "mysql", "mariadb"):
            # Bytes against bytes: no affinity, collation, case folding or PAD SPACE.
            return and_(plain, cast(col, LargeBinary).in_([v.encode() for v in values]))
        if backend == "postgresql":
            # "C" is deterministic byte order: proof against a case-insensitive ICU collation.
            exact: ColumnElement[bool] = col.collate("C").in_(values)
            return and_(plain, exact)
        return plain  # any other database: the read-back check below still holds

    def _canonical(self, keyed: KeyedTable, value: Any) -> str | None:
        """A key value read back, as the locator that names it exactly (None: no locator can)."""
        if self._kind(keyed)[0] == "integer":
            return str(value) if type(value) is int else None
        return value if isinstance(value, str) else None

    def _refs_locators(self, refs: Sequence[ConnectorRef]) -> list[str]:
        return list(dict.fromkeys(ref.locator for ref in refs))

    # --- the contract -------------------------------------------------------------------------

    def delete(self, ref: ConnectorRef, idempotency_key: str) -> str:
        """Delete child rows then main rows in one transaction; no rows is already absent."""
        counts = self._delete_batch([ref.locator])[ref.locator]
        total = sum(counts.values())
        if total == 0:
            return f"no rows in {self.main.table} or its child tables: already absent"
        parts = ", ".join(f"{counts[k.table]} from {k.table}" for k in self._keyed()
                          if counts[k.table])
        return f"deleted {total} rows ({parts}) in one transaction"

    def delete_many(self, items: Sequence[tuple[ConnectorRef, str]]) -> dict[
            str, str | ConnectorError]:
        """Delete a batch's rows, children first, in one transaction. If the batch fails for
        a reason that is not the database being unavailable (a constraint the configuration
        does not know of, a locator refused, a key read back that was not sent), each record
        is deleted on its own, so that only the record at fault fails."""
        if not items:
            return {}
        locators = self._refs_locators([ref for ref, _ in items])
        try:
            counts = self._delete_batch(locators)
        except PermanentConnectorError:
            if len(locators) == 1:
                raise
            out: dict[str, str | ConnectorError] = {}
            for ref, key in items:
                try:
                    out[key] = self.delete(ref, key)
                except ConnectorError as exc:
                    out[key] = exc
            return out
        described = {loc: self._described(c, len(locators)) for loc, c in counts.items()}
        return {key: described[ref.locator] for ref, key in items}

    def _delete_batch(self, locators: list[str]) -> dict[str, Counter[str]]:
        """Rows deleted per locator and table, in one transaction, each key read back and
        checked to be one of ``locators`` exactly (else everything is rolled back)."""
        counts: dict[str, Counter[str]] = {loc: Counter() for loc in locators}
        try:
            with self._get_engine().begin() as conn:
                returning = bool(getattr(conn.dialect, "delete_returning", False))
                for keyed in self._keyed():
                    col = self._column(keyed)
                    for start in range(0, len(locators), CHUNK):
                        chunk = locators[start:start + CHUNK]
                        where = self._match(keyed, self._values(keyed, chunk))
                        stmt = delete(col.table).where(where)
                        if returning:
                            keys = list(conn.scalars(stmt.returning(col)))
                        else:
                            keys = list(conn.scalars(select(col).where(where).with_for_update()))
                            conn.execute(stmt)
                        sent = set(chunk)
                        for value in keys:
                            loc = self._canonical(keyed, value)
                            if loc is None or loc not in sent:
                                raise KeyMismatch(
                                    f"{self.name}: delete failed: {keyed.table} matched a row "
                                    "whose key is not exactly a locator sent; nothing was "
                                    "deleted (the transaction was rolled back)")
                            counts[loc][keyed.table] += 1
        except (PermanentConnectorError, TransientConnectorError):
            raise
        except SQLAlchemyError as exc:
            raise self._guard("delete", exc) from exc
        if self.vacuum_after_delete and any(sum(c.values()) for c in counts.values()):
            self._vacuum()
        return counts

    def _vacuum(self) -> None:
        """VACUUM the tables just deleted from, so their dead row versions are reclaimed now
        rather than when autovacuum comes round (PostgreSQL; outside any transaction)."""
        try:
            with self._get_engine().connect() as conn:
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                for keyed in self._keyed():
                    t = self._table(keyed.table)
                    name = conn.dialect.identifier_preparer.format_table(t)
                    conn.exec_driver_sql(f"VACUUM {name}")
        except SQLAlchemyError as exc:
            # The rows are deleted; the retry finds them absent and vacuums again.
            raise TransientConnectorError(
                f"{self.name}: the rows were deleted but VACUUM failed "
                f"({type(exc).__name__}): to be retried") from exc

    def _described(self, counts: Counter[str], batch: int) -> str:
        total = sum(counts.values())
        if total == 0:
            return f"no rows in {self.main.table} or its child tables: already absent"
        parts = ", ".join(f"{counts[k.table]} from {k.table}" for k in self._keyed()
                          if counts[k.table])
        return (f"deleted {total} rows ({parts}) in one transaction, with the other records "
                f"of a batch of {batch}")

    def _found(self, locators: list[str]) -> set[str]:
        """The locators with rows left in the main table or a child table."""
        found: set[str] = set()
        try:
            with self._get_engine().connect() as conn:
                keyed = self._keyed()
                for start in range(0, len(locators), CHUNK):
                    chunk = locators[start:start + CHUNK]
                    sent = set(chunk)
                    selects = [select(self._column(k).label("key")).where(
                        self._match(k, self._values(k, chunk))) for k in keyed]
                    query = union(*selects) if len(selects) > 1 else selects[0]
                    for value in conn.scalars(query):
                        loc = str(value) if type(value) is int else value
                        if isinstance(loc, str) and loc in sent:
                            found.add(loc)
        except (PermanentConnectorError, TransientConnectorError):
            raise
        except SQLAlchemyError as exc:
            raise self._guard("exists", exc) from exc
        return found

    def exists_many(self, refs: Sequence[ConnectorRef]) -> set[ConnectorRef]:
        """The refs with rows left in the main table or a child table."""
        found = self._found(self._refs_locators(refs))
        return {ref for ref in refs if ref.locator in found}

    def exists(self, ref: ConnectorRef) -> bool:
        return bool(self._found([ref.locator]))

    def export(self, ref: ConnectorRef) -> Export:
        try:
            tables = []
            with self._get_engine().connect() as conn:
                for keyed in [self.main, *self.children]:
                    col = self._column(keyed)
                    t = col.table
                    rows = conn.execute(select(t).where(
                        self._match(keyed, self._values(keyed, [ref.locator])))).all()
                    index = list(t.c.keys()).index(col.key)
                    if any(self._canonical(keyed, r[index]) != ref.locator for r in rows):
                        raise KeyMismatch(f"{self.name}: export failed: {keyed.table} matched "
                                          "a row whose key is not exactly the locator")
                    tables.append(ExportedTable(keyed.table, tuple(t.c.keys()),
                                                tuple(tuple(r) for r in rows)))
            return Export(tables=tuple(tables))
        except (PermanentConnectorError, TransientConnectorError):
            raise
        except SQLAlchemyError as exc:
            raise self._guard("export", exc) from exc

    def remaining_copies(self, executed_on: dt.date) -> tuple[RemainingCopy, ...]:
        """What of a deleted record outlives the delete in this system, and until when."""
        copies = [*RemainingCopy.backups(self.backups_kept_days, executed_on,
                                        f"[connectors.{self.name}].backups_kept_days")]
        if self.backend == "sqlite":
            copies.append(RemainingCopy(
                what="old pages in the database's journal or write-ahead log, until SQLite "
                     "next overwrites them (the deleted rows themselves are overwritten in "
                     "the database file: secure_delete is on)",
                expire_by=None, basis="PRAGMA secure_delete=ON on every connection"))
        elif self.backend == "postgresql":
            if self.vacuum_after_delete:
                copies.append(RemainingCopy(
                    what="fragments in free space of the table files and in the write-ahead "
                         "log, until overwritten (VACUUM was run right after the delete)",
                    expire_by=None, basis=f"[connectors.{self.name}].vacuum_after_delete"))
            else:
                copies.append(RemainingCopy(
                    what="dead row versions in the table files until autovacuum reclaims "
                         "them and the space is reused, and the write-ahead log",
                    expire_by=None, basis="PostgreSQL keeps deleted rows until vacuum"))
        else:
            copies.append(RemainingCopy(
                what="deleted rows in the database's files and logs until it reuses the space",
                expire_by=None, basis=f"{self.backend} does not promise to overwrite deleted rows"))
        return tuple(copies)

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        self._tables.clear()
        self._kinds.clear()
