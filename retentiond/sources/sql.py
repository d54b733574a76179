"""``kind = "sql"``: a query against a holding database or warehouse, streamed as a feed.

The query runs in a read-only transaction on a server-side cursor (SQLAlchemy's
``stream_results``: a named cursor on PostgreSQL, an unbuffered ``SSCursor`` on MariaDB and
MySQL), ``fetch_size`` rows at a time, in the importer's reader thread: memory stays flat
however many rows it returns. Its columns are the records columns, renamed by ``columns``
where the query's names differ. Values are taken as the database gives them: text, whole
numbers (as their digits), dates; a timestamp or a fraction is refused for its row and column
(cast it in the query), as is anything else.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import create_engine, make_url, text
from sqlalchemy.pool import NullPool

from retentiond.ingest.reader import RowError, Rows
from retentiond.ingest.records import OPTIONAL, REQUIRED
from retentiond.sources.settings import SourceSpec

#: Dialects whose transactions can be made read-only with ``SET TRANSACTION READ ONLY``.
_READ_ONLY = {"postgresql", "mysql", "mariadb"}


def _value(value: Any) -> Any:
    """A database value as the validator takes it (text), or a ``ValueError`` saying why not."""
    cls = value.__class__
    if cls is str or value is None:
        return value
    if cls is dt.date:
        return value.isoformat()
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
            result = conn.execution_options(stream_results=True,
                                            max_row_buffer=spec.fetch_size).execute(
                text(spec.query))
            keys = list(result.keys())
            names = [rename.get(k, k) for k in keys]
            problem = _check_columns(keys, names)
            if problem is not None:
                result.close()  # an unread streamed result must be let go before the raise
                raise problem
            line = 0
            for rows in result.partitions(spec.fetch_size):
                for row in rows:
                    line += 1
                    try:
                        yield line, {n: (v if v is None or v.__class__ is str else _value(v))
                                     for n, v in zip(names, row, strict=True)}
                    except ValueError:
                        yield line, _bad_row(names, row)
            conn.rollback()
    finally:
        engine.dispose()


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
