"""``kind = "sql"``: a query against a holding database or warehouse, streamed as a feed.

The query runs in a read-only transaction on a server-side cursor (SQLAlchemy's
``stream_results``: a named cursor on PostgreSQL, an unbuffered ``SSCursor`` on MariaDB and
MySQL), ``fetch_size`` rows at a time, in the importer's reader thread: memory stays flat
however many rows it returns. Its columns are the records columns, renamed by ``columns``
where the query's names differ. Values are taken as the database gives them: text, whole
numbers (as their digits), dates; a timestamp or a fraction is refused for its row and column
(cast it in the query), as is anything else.

On PostgreSQL the rows are fetched through psycopg's own named cursor (plain tuples, no
SQLAlchemy row objects), and a row of text, dates and nulls (almost every row) is handed on as
it is: checking the types of a whole row at C speed costs less than looking at each value.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from decimal import Decimal
from operator import itemgetter
from typing import Any

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from retentiond.ingest.reader import RowError, Rows
from retentiond.ingest.records import _DATE_FIELDS, OPTIONAL, REQUIRED
from retentiond.sources.settings import SourceSpec

#: Dialects whose transactions can be made read-only with ``SET TRANSACTION READ ONLY``.
_READ_ONLY = {"postgresql", "mysql", "mariadb"}


#: The types of a row's values that are handed on as they are: text and nulls, and dates in
#: the date columns (the validator takes a ``datetime.date`` there as it is).
_AS_IS = frozenset({str, type(None)})
_AS_IS_DATE = frozenset({str, type(None), dt.date})


def _value(value: Any, date_column: bool = False) -> Any:
    """A database value as the validator takes it (text, or a date in a date column), or a
    ``ValueError`` saying why not."""
    cls = value.__class__
    if cls is str or value is None:
        return value
    if cls is dt.date:
        return value if date_column else value.isoformat()
    if cls is int:
        return str(value)
    if isinstance(value, dt.datetime):
        raise ValueError("is a timestamp: cast it to a date in the query")
    if isinstance(value, Decimal) and value == value.to_integral_value():
        return str(int(value))
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"is a {cls.__name__}, not text, a whole number or a date")


def query_rows(spec: SourceSpec) -> Rows:
    """The query's rows as ``(row number, {record column: value})``. A column that is not a
    record column (after ``columns``), or a missing required one, raises ``RowError`` before
    the first row (the feed is refused); a bad value makes that row an ``__error__`` row."""
    assert spec.url is not None and spec.query is not None
    rename = {query: record for record, query in spec.columns.items()}
    engine = create_engine(spec.url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            if engine.dialect.name in _READ_ONLY:
                # The query only reads: a mistake in it must not be able to write either.
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")
            if engine.dialect.driver == "psycopg":
                yield from _rows(rename, *_postgres_batches(conn, spec))
            else:
                result = conn.execution_options(stream_results=True,
                                                max_row_buffer=spec.fetch_size).execute(
                    text(spec.query))
                try:
                    yield from _rows(rename, list(result.keys()),
                                     result.partitions(spec.fetch_size))
                finally:
                    result.close()  # an unread streamed result must be let go
            conn.rollback()
    finally:
        engine.dispose()


#: PostgreSQL's text types (``text``, ``varchar``, ``char``, ``name``) and ``date``, by OID:
#: psycopg gives every value of such a column as a ``str`` (or a ``datetime.date``) or None.
_PG_TEXT = frozenset({25, 1043, 1042, 19})
_PG_DATE = 1082


def _postgres_batches(conn: Any, spec: SourceSpec) -> tuple[
        list[str], Iterator[Sequence[Any]], list[str | None]]:
    """The query's column names, its rows ``fetch_size`` at a time (on a psycopg named,
    server-side, cursor in the connection's read-only transaction), and what each column
    holds: ``text``, ``date`` or None (anything else)."""
    raw = conn.connection.driver_connection
    cur = raw.cursor(name="retentiond_source")
    cur.itersize = spec.fetch_size
    cur.execute(spec.query)
    columns = list(cur.description or ())
    keys = [c.name for c in columns]
    kinds = ["text" if c.type_code in _PG_TEXT else "date" if c.type_code == _PG_DATE else None
             for c in columns]

    def batches() -> Iterator[Sequence[Any]]:
        try:
            while rows := cur.fetchmany(spec.fetch_size):
                yield rows
        finally:
            cur.close()

    return keys, batches(), kinds


def _picker(positions: list[int]) -> Callable[[Sequence[Any]], tuple[Any, ...]]:
    """The values at ``positions`` of a row, as a tuple."""
    if len(positions) > 1:
        return itemgetter(*positions)
    if positions:
        (only,) = positions
        return lambda row: (row[only],)
    return lambda row: ()


def _rows(rename: dict[str, str], keys: list[str], batches: Iterator[Sequence[Any]],
          kinds: list[str | None] | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows as ``(row number, {record column: value})``, checked as the module says.
    ``kinds`` (``text``, ``date`` or None a column), when the driver tells: a query whose every
    column is text, or a date where a date belongs, needs no look at its values at all."""
    try:
        names = [rename.get(k, k) for k in keys]
        problem = _check_columns(keys, names)
        if problem is not None:
            raise problem
        dated = [i for i, n in enumerate(names) if n in _DATE_FIELDS]
        texts = _picker([i for i in range(len(names)) if i not in dated])
        dates = _picker(dated)
        as_is, as_is_date = _AS_IS.issuperset, _AS_IS_DATE.issuperset
        line = 0
        if kinds is not None and all(k == "text" or (k == "date" and i in dated)
                                     for i, k in enumerate(kinds)):
            for rows in batches:
                for row in rows:
                    line += 1
                    yield line, dict(zip(names, row, strict=True))
            return
        for rows in batches:
            for row in rows:
                line += 1
                if as_is(map(type, texts(row))) and as_is_date(map(type, dates(row))):
                    yield line, dict(zip(names, row, strict=True))
                    continue
                try:
                    yield line, {n: _value(v, i in dated)
                                 for i, (n, v) in enumerate(zip(names, row, strict=True))}
                except ValueError:
                    yield line, _bad_row(names, row)
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()  # a named cursor is closed while its connection is still open


def _check_columns(keys: list[str], names: list[str]) -> RowError | None:
    """What is wrong with the query's columns (after ``columns``), if anything."""
    allowed = set(REQUIRED) | set(OPTIONAL)
    for query_name, name in zip(keys, names, strict=True):
        if name not in allowed:
            return RowError(name, f"the query's column {query_name!r} is not a record column "
                            f"(map it with columns.RECORD_COLUMN = \"{query_name}\", or leave "
                            "it out of the query)")
    for required in REQUIRED:
        if required not in names:
            return RowError(required, f"the query has no column for {required!r} (columns "
                            f"found: {', '.join(keys) or 'none'})")
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        return RowError(twice, f"two of the query's columns give {twice!r}")
    return None


def _bad_row(names: list[str], row: Any) -> dict[str, Any]:
    """The first value of a row that cannot be used, as the validator's ``__error__`` row."""
    for name, value in zip(names, row, strict=True):
        try:
            _value(value)
        except ValueError as exc:
            return {"__error__": str(exc), "__field__": name}
    return {"__error__": "cannot be read", "__field__": "(row)"}


def describe_url(url: str) -> str:
    """The URL without its password, for pages and logs."""
    return make_url(url).render_as_string(hide_password=True)
