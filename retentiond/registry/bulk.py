"""Updating many rows by id without the ORM's per-row bookkeeping.

``UPDATE table SET columns WHERE id = :key``, compiled once per dialect and run as one
driver-level executemany. Each value goes through SQLAlchemy's own bind processor for its
column, so it is stored exactly as an ORM or Core write would store it; a value repeated in a
batch (one timestamp, a few thousand dates) is processed once. Used where a batch is large
and the bookkeeping costs more than the database's work: recompute's stored decisions and the
audit chain's seal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, bindparam, update
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

_UNSEEN = object()


class BulkUpdate:
    """``UPDATE table SET columns WHERE id = :key`` for rows ``(*columns values, id)``."""

    def __init__(self, table: Table, columns: Sequence[str], key: str) -> None:
        self.table, self.columns, self.key = table, tuple(columns), key
        self.statement = (
            update(table).where(table.c.id == bindparam(key))
            .values({c: bindparam(c) for c in columns})
        )
        self._compiled: dict[tuple[str, str], _Compiled] = {}

    def write(self, session: Session, rows: Sequence[tuple[Any, ...]]) -> None:
        """Write ``rows``, each the values of ``columns`` in order, then the row's id."""
        if not rows:
            return
        dialect = session.get_bind().dialect
        compiled = self._compiled.get((dialect.name, dialect.driver))
        if compiled is None:
            compiled = self._compiled[(dialect.name, dialect.driver)] = _Compiled(self, dialect)
        session.connection().exec_driver_sql(compiled.sql, compiled.params(rows))


class _Compiled:
    """The statement for one dialect: its SQL, and for each driver parameter, in order, its
    name, where it is in a row and its bind processor."""

    def __init__(self, bulk: BulkUpdate, dialect: Dialect) -> None:
        compiled = bulk.statement.compile(dialect=dialect)
        self.sql = compiled.string
        names = (*bulk.columns, bulk.key)
        self.positional = compiled.positiontup is not None
        order = list(compiled.positiontup) if compiled.positiontup is not None else list(names)
        self.names = order
        self.steps = [
            (names.index(n),
             bulk.table.c["id" if n == bulk.key else n].type.dialect_impl(dialect)
             .bind_processor(dialect))
            for n in order]

    def params(self, rows: Sequence[tuple[Any, ...]]) -> list[Any]:
        steps: list[tuple[int, Any, dict[Any, Any]]] = [(i, p, {}) for i, p in self.steps]
        values = []
        for r in rows:
            row = []
            for i, p, seen in steps:
                v = r[i]
                if p is not None and v is not None:
                    w = seen.get(v, _UNSEEN)
                    if w is _UNSEEN:
                        w = seen[v] = p(v)
                    v = w
                row.append(v)
            values.append(row)
        if self.positional:
            return [tuple(v) for v in values]
        return [dict(zip(self.names, v, strict=True)) for v in values]
