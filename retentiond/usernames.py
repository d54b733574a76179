"""User names that cannot pass for one another.

A user name is NFKC-normalised (so that a full-width ``ａｐｐｒｏｖｅｒ１`` is ``approver1``) and
may hold only:

- letters (Unicode categories Lu, Ll, Lt, Lm, Lo), all from one script (``approver1`` with a
  Cyrillic ``а`` is refused: it looks like the Latin name);
- digits (category Nd);
- ``.``, ``_``, ``-`` and ``@`` (so that an email address or a UPN is a user name).

Nothing else: no space, no control character, no zero-width or other invisible character, no
line or paragraph separator. Two names are the same person's when their *keys* are equal: the
NFKC form, case-folded (``APPROVER1`` and ``approver1``). The registry keeps the key in a unique
column, so two accounts whose names differ only in case or width cannot exist, by any route.
"""

from __future__ import annotations

import unicodedata

PUNCTUATION = frozenset("._-@")
MAX_LENGTH = 200
_LETTER = ("Lu", "Ll", "Lt", "Lm", "Lo")
#: Characters that are invisible or separate rather than show: dropped from a key, so that an
#: old name holding one (from before names were checked) collides with its visible twin.
_IGNORED = ("Cc", "Cf", "Zl", "Zp", "Zs")
ALLOWED_WORDS = "letters (of one script), digits, '.', '_', '-' and '@'"


class UsernameError(ValueError):
    """A user name that is not allowed; the message says which character and why."""


def username_key(name: str) -> str:
    """What two names must differ in to be two people: NFKC, case-folded, NFKC again (folding
    can undo the normal form), without invisible characters."""
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", name).casefold())
    visible = "".join(c for c in folded if unicodedata.category(c) not in _IGNORED)
    # Once more: a mark that followed an invisible character now follows its letter.
    return unicodedata.normalize("NFKC", visible)


def _script(char: str) -> str:
    """The script a letter belongs to, by the first word of its Unicode name (LATIN,
    CYRILLIC, GREEK, ARABIC, CJK, ...)."""
    return unicodedata.name(char, "UNKNOWN").split(" ")[0]


def check_username(raw: str) -> str:
    """The user name to store (NFKC), or ``UsernameError`` saying what is wrong."""
    name = unicodedata.normalize("NFKC", raw.strip())
    if not name:
        raise UsernameError("a user name is needed")
    if len(name) > MAX_LENGTH:
        raise UsernameError(f"a user name is at most {MAX_LENGTH} characters")
    scripts: dict[str, str] = {}
    for position, char in enumerate(name, start=1):
        category = unicodedata.category(char)
        if category in _LETTER:
            scripts.setdefault(_script(char), char)
            continue
        if category == "Nd" or char in PUNCTUATION:
            continue
        what = unicodedata.name(char, "a control character")
        raise UsernameError(f"U+{ord(char):04X} ({what}) at character {position} is not "
                            f"allowed in a user name: use {ALLOWED_WORDS}")
    if len(scripts) > 1:
        mixed = ", ".join(f"{s} ({c!r})" for s, c in sorted(scripts.items()))
        raise UsernameError(f"a user name's letters must all be of one script, not {mixed}: "
                            "such a name can look like another person's")
    return name


#: The longest review group name (``review_groups.name``).
GROUP_NAME_LENGTH = 100


def check_group_name(raw: str) -> str:
    """A review group's name to store: checked like a user name (``check_username``), then
    NFKC and lower-case, at most ``GROUP_NAME_LENGTH`` characters. ``UsernameError`` (its
    message says "group name") otherwise."""
    try:
        name = check_username(raw)
    except UsernameError as exc:
        raise UsernameError(str(exc).replace("user name", "group name")) from None
    name = unicodedata.normalize("NFKC", name.lower())
    if len(name) > GROUP_NAME_LENGTH:
        raise UsernameError(f"a group name is at most {GROUP_NAME_LENGTH} characters")
    return name
