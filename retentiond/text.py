"""Free text people give as a reason: it must say something a reader can see.

A reason is what the audit trail keeps to explain a disposal, a hold or its lifting. One made
only of characters that print nothing (a zero-width space, a word joiner, a byte-order mark,
no-break spaces, the Hangul filler) looks empty to every reader and explains nothing, yet
``str.strip()`` leaves it standing. Every route that takes a reason (the lifecycle functions,
and through them the command line, the web forms and the API) asks :func:`has_visible`.
"""

from __future__ import annotations

import unicodedata

#: Categories that print nothing on their own: controls, format characters (zero-width space,
#: joiners, BOM, bidi marks, tags), surrogates, private use, unassigned, separators (every
#: space, line and paragraph separator) and combining marks, which need a base to show on.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zs", "Zl", "Zp",
                                   "Mn", "Mc", "Me"})
#: Letters and symbols that are drawn as blank space: the Hangul fillers, the halfwidth
#: Hangul filler and the blank Braille pattern.
_BLANK_GRAPHEMES = frozenset({"\u115f", "\u1160", "\u3164", "\uffa0", "\u2800"})


def is_visible(char: str) -> bool:
    """True for a character a reader sees (a letter, digit, punctuation or symbol)."""
    return (unicodedata.category(char) not in _INVISIBLE_CATEGORIES
            and char not in _BLANK_GRAPHEMES)


def has_visible(text: str) -> bool:
    """True when ``text`` has at least one character a reader sees."""
    return any(is_visible(c) for c in text)


def visible_text(text: str | None, refusal: str) -> str:
    """``text`` without its leading and trailing white space. Refused with ``ValueError``
    when it has nothing a reader can see; the message starts with ``refusal`` (what is
    needed, e.g. "a hold needs a reason")."""
    stripped = (text or "").strip()
    if not has_visible(stripped):
        raise ValueError(f"{refusal}: at least one visible character (spaces and invisible "
                         "characters alone say nothing)")
    return stripped
