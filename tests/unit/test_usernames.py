"""User names (issue 11, item 4): what a user name may hold, and when two names are one
person's (NFKC, case-folded, invisible characters set aside)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retentiond.web.usernames import UsernameError, check_username, username_key


@pytest.mark.parametrize("name", ["approver1", "j.smith", "k.lee@council.example",
                                  "head_of-ig", "siân.jones", "ΑΛΦΑ", "APPROVER1"])
def test_ordinary_names_are_allowed(name: str) -> None:
    """Letters of one script, digits, '.', '_', '-' and '@' make a user name."""
    assert check_username(name) == name


@pytest.mark.parametrize(("name", "said"), [
    ("approver1\u200b", "U+200B (ZERO WIDTH SPACE) at character 10"),
    ("appro\u00adver1", "U+00AD (SOFT HYPHEN)"),
    ("approver\u202e1", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("app rover1", "U+0020 (SPACE)"),
    ("approver1\x00", "U+0000 (a control character)"),
    ("approver\t1", "U+0009 (a control character)"),
    ("approver\u20281", "U+2028 (LINE SEPARATOR)"),
    ("approver\u00a01", "U+0020 (SPACE)"),  # NFKC makes a no-break space a space
    ("o'brien", "U+0027 (APOSTROPHE)"),
    ("approver1;drop", "U+003B (SEMICOLON)"),
    ("\u0430pprover1", "letters must all be of one script"),  # Cyrillic a
    ("", "a user name is needed"),
    ("x" * 201, "at most 200 characters"),
])
def test_invisible_control_and_look_alike_names_are_refused(name: str, said: str) -> None:
    """Every refused name says which character (by code point and name) or which rule."""
    with pytest.raises(UsernameError) as err:
        check_username(name)
    assert said in str(err.value)


def test_full_width_becomes_the_ordinary_name() -> None:
    """NFKC: a full-width name is stored as the ordinary one it looks like."""
    assert check_username("ａｐｐｒｏｖｅｒ１") == "approver1"


@pytest.mark.parametrize("twin", ["APPROVER1", "Approver1", "ａｐｐｒｏｖｅｒ１", "ＡＰＰＲＯＶＥＲ１",
                                  "approver1\u200b", "\u200dapprover1", "approver\u00ad1"])
def test_twins_share_a_key(twin: str) -> None:
    """Names that differ only in case, width or an invisible character have one key."""
    assert username_key(twin) == username_key("approver1") == "approver1"


def test_different_people_have_different_keys() -> None:
    """The key does not merge names that really differ."""
    keys = {username_key(n) for n in ("approver1", "approver2", "approver.1", "\u0430pprover1")}
    assert len(keys) == 4


@given(st.text(min_size=1, max_size=40))
def test_key_is_stable_and_blind_to_case(text: str) -> None:
    """The key of a key is the key, and folding the case first changes nothing; an allowed
    name is stored in its NFKC form, which has the same key as the text typed."""
    key = username_key(text)
    assert username_key(key) == key
    assert username_key(text.casefold()) == key
    try:
        name = check_username(text)
    except UsernameError:
        return
    assert username_key(name) == username_key(text.strip())
