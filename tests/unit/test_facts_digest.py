"""The facts digest is the one every registry already stores: a faster way of building it must
give, for every row, exactly the digest of ``repr((source, *row[1:]))`` (hypothesis), or an
upgrade would see every record as changed and rewrite all of them on its next re-sync."""

from __future__ import annotations

import datetime as dt
import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st

from retentiond.ingest.records import _DATE_MEMO, _DATE_REPRS, _Row, facts_digest

texts = st.text(max_size=40)
maybe_text = st.none() | texts
maybe_date = st.none() | st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31))
ids = st.integers(-(2**63), 2**63 - 1)
rows = st.builds(_Row, st.integers(1, 10**9), texts, texts, ids, st.none() | ids, maybe_text,
                 maybe_text, maybe_text, maybe_date, maybe_date, maybe_date, maybe_date,
                 maybe_date, texts)


def stored(source: str | None, row: _Row) -> str:
    """How every stored digest was made before the f-string (retentiond 0.x, issue 13)."""
    return hashlib.blake2b(repr((source, *row[1:])).encode(), digest_size=16).hexdigest()


@settings(max_examples=500)
@given(maybe_text, rows)
def test_digest_is_the_stored_one(source, row):
    assert facts_digest(source, row) == stored(source, row)


def test_digest_ignores_the_line_and_tells_rows_apart():
    row = _Row(7, "R-1", "safeguarding.referral", 3, None, "files", "files://a 'b' \"c\"",
               "S-1", dt.date(2010, 3, 4), None, dt.date(2019, 1, 1), None, None, "a;b")
    assert facts_digest("warehouse", row) == facts_digest("warehouse", row._replace(line=8))
    assert facts_digest("warehouse", row) != facts_digest("other", row)
    assert facts_digest("warehouse", row) != facts_digest(
        "warehouse", row._replace(closed_on=dt.date(2019, 1, 2)))
    assert facts_digest(None, row) == stored(None, row)


def test_remembered_dates_stay_bounded():
    start = dt.date(2000, 1, 1)
    for n in range(_DATE_MEMO + 10):
        row = _Row(n, f"R-{n}", "c", 1, None, None, None, None, start + dt.timedelta(days=n),
                   None, None, None, None, "")
        assert facts_digest("s", row) == stored("s", row)
    assert len(_DATE_REPRS) <= _DATE_MEMO
