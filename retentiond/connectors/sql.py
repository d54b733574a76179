"""``kind = "sql"``: a record is the rows of one table (and its child tables) with one key.

Any database SQLAlchemy reaches. The URL carries a password, so it is read from a file or a
systemd credential, never from the command line; an inline ``url`` is accepted only when it
has no password (SQLite, or PostgreSQL with peer or trust auth).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Engine,
    MetaData,
    Table,
    create_engine,
    delete,
    exists,
    func,
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
    PermanentConnectorError,
    TransientConnectorError,
    identifier,
    option,
    read_secret,
)
from retentiond.registry.db import normalise_url

#: Locators per ``IN (...)`` list: well under SQLite's oldest limit of 999 parameters.
CHUNK = 500


@dataclass(frozen=True)
class KeyedTable:
    """A table and the column that holds the record's locator."""

    table: str
    key_column: str


class SqlConnector:
    """Deletes the rows of ``table`` whose ``key_column`` is the record's locator, and the
    rows of each child table first, in one transaction; ``exists`` looks in all of them.

    ``delete_many`` does the same for a batch: per table, children first, one ``DELETE ...
    WHERE key IN (...)`` per 500 locators, all in one transaction; ``exists_many`` checks a
    batch with one ``SELECT`` (a ``UNION`` over the tables) per 500 locators."""

    kind = "sql"

    def __init__(self, name: str, url: str, main: KeyedTable,
                 children: tuple[KeyedTable, ...] = ()) -> None:
        self.name = name
        self.url = normalise_url(url)
        self.main = main
        self.children = children
        self._engine: Engine | None = None
        self._tables: dict[str, Table] = {}

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
        try:
            make_url(normalise_url(url))
        except Exception as exc:
            raise ConnectorConfigError(f"{where}: the database URL is not a SQLAlchemy URL") from exc
        return cls(name, url, main, tuple(children))

    # --- plumbing -----------------------------------------------------------------------------

    def _get_engine(self) -> Engine:
        if self._engine is None:
            kwargs: dict[str, Any] = {"pool_pre_ping": True}
            if make_url(self.url).get_backend_name() == "sqlite":
                kwargs = {"connect_args": {"timeout": 30}}
            self._engine = create_engine(self.url, **kwargs)
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

    # --- the contract -------------------------------------------------------------------------

    def delete(self, ref: ConnectorRef, idempotency_key: str) -> str:
        """Delete child rows then main rows in one transaction; no rows is already absent."""
        try:
            counts = []
            with self._get_engine().begin() as conn:
                for keyed in self._keyed():
                    col = self._column(keyed)
                    result = conn.execute(delete(col.table).where(col == ref.locator))
                    counts.append((keyed.table, int(result.rowcount or 0)))
        except (PermanentConnectorError, TransientConnectorError):
            raise
        except SQLAlchemyError as exc:
            raise self._guard("delete", exc) from exc
        total = sum(n for _, n in counts)
        if total == 0:
            return f"no rows in {self.main.table} or its child tables: already absent"
        parts = ", ".join(f"{n} from {t}" for t, n in counts if n)
        return f"deleted {total} rows ({parts}) in one transaction"

    def delete_many(self, items: Sequence[tuple[ConnectorRef, str]]) -> dict[
            str, str | ConnectorError]:
        """Delete a batch's rows, children first, in one transaction. If the batch fails for
        a reason that is not the database being unavailable (a constraint the configuration
        does not know of, say), each record is deleted on its own, so that only the record
        at fault fails."""
        if not items:
            return {}
        locators = list(dict.fromkeys(ref.locator for ref, _ in items))
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
        """Rows deleted per locator and table, in one transaction."""
        counts: dict[str, Counter[str]] = {loc: Counter() for loc in locators}
        by_text = {loc: loc for loc in locators}
        try:
            with self._get_engine().begin() as conn:
                returning = bool(getattr(conn.dialect, "delete_returning", False))
                for keyed in self._keyed():
                    col = self._column(keyed)
                    for start in range(0, len(locators), CHUNK):
                        chunk = locators[start:start + CHUNK]
                        stmt = delete(col.table).where(col.in_(chunk))
                        if returning:
                            found = Counter(str(v) for v in conn.scalars(stmt.returning(col)))
                        else:
                            found = Counter({str(v): int(n) for v, n in conn.execute(
                                select(col, func.count()).where(col.in_(chunk)).group_by(col))})
                            conn.execute(stmt)
                        for value, n in found.items():
                            loc = by_text.get(value)
                            if loc is not None:
                                counts[loc][keyed.table] += n
        except (PermanentConnectorError, TransientConnectorError):
            raise
        except SQLAlchemyError as exc:
            raise self._guard("delete", exc) from exc
        return counts

    def _described(self, counts: Counter[str], batch: int) -> str:
        total = sum(counts.values())
        if total == 0:
            return f"no rows in {self.main.table} or its child tables: already absent"
        parts = ", ".join(f"{counts[k.table]} from {k.table}" for k in self._keyed()
                          if counts[k.table])
        return (f"deleted {total} rows ({parts}) in one transaction, with the other records "
                f"of a batch of {batch}")

    def exists_many(self, refs: Sequence[ConnectorRef]) -> set[ConnectorRef]:
        """The refs with rows left in the main table or a child table."""
        locators = list(dict.fromkeys(ref.locator for ref in refs))
        found: set[str] = set()
        try:
            with self._get_engine().connect() as conn:
                cols = [self._column(keyed) for keyed in self._keyed()]
                for start in range(0, len(locators), CHUNK):
                    chunk = locators[start:start + CHUNK]
                    selects = [select(col).where(col.in_(chunk)) for col in cols]
                    query = union(*selects) if len(selects) > 1 else selects[0]
                    found.update(str(v) for v in conn.scalars(query))
        except (PermanentConnectorError, TransientConnectorError):
            raise
        except SQLAlchemyError as exc:
            raise self._guard("exists", exc) from exc
        return {ref for ref in refs if ref.locator in found}

    def exists(self, ref: ConnectorRef) -> bool:
        try:
            with self._get_engine().connect() as conn:
                for keyed in self._keyed():
                    col = self._column(keyed)
                    if conn.scalar(select(exists().where(col == ref.locator))):
                        return True
            return False
        except (PermanentConnectorError, TransientConnectorError):
            raise
        except SQLAlchemyError as exc:
            raise self._guard("exists", exc) from exc

    def export(self, ref: ConnectorRef) -> Export:
        try:
            tables = []
            with self._get_engine().connect() as conn:
                for keyed in [self.main, *self.children]:
                    col = self._column(keyed)
                    t = col.table
                    rows = conn.execute(select(t).where(col == ref.locator)).all()
                    tables.append(ExportedTable(keyed.table, tuple(t.c.keys()),
                                                tuple(tuple(r) for r in rows)))
            return Export(tables=tuple(tables))
        except (PermanentConnectorError, TransientConnectorError):
            raise
        except SQLAlchemyError as exc:
            raise self._guard("export", exc) from exc

    def close(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None
        self._tables.clear()
