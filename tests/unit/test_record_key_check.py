"""The validator checks a record_id by its first character only, after ``_clean``: for every
text that ``_clean`` lets through, that is exactly what ``_KEY_RE`` (the documented rule)
accepts (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from retentiond.ingest.reader import RowError
from retentiond.ingest.records import _KEY_RE, _clean

keys = st.text(min_size=1, max_size=210) | st.text(
    alphabet=st.sampled_from(list("ab ;,\t\r\n\u00a0\u200b\u2028-/:")), min_size=1, max_size=12)


@settings(max_examples=2000)
@given(keys)
def test_first_character_check_is_the_key_rule(value):
    try:
        key = _clean(value, "record_id", 200)
    except RowError:
        return
    if key:
        assert (key[0] not in ";,") == bool(_KEY_RE.match(key))
