"""Free text that says nothing: the one rule every route that takes a reason applies
(``retentiond/text.py``)."""

from __future__ import annotations

import pytest

from retentiond.text import has_visible, visible_text

#: Strings a reader sees as empty, whatever ``str.strip`` thinks of them.
INVISIBLE = {
    "empty": "", "spaces": "   ", "tab-newline": "\t\n", "zero-width-space": "\u200b",
    "zero-width-joiners": "\u200c\u200d", "word-joiner": "\u2060", "bom": "\ufeff",
    "no-break-space": "\u00a0", "ideographic-space": "\u3000", "hangul-filler": "\u3164",
    "hangul-choseong-jungseong-fillers": "\u115f\u1160", "halfwidth-hangul-filler": "\uffa0",
    "braille-blank": "\u2800", "mongolian-vowel-separator": "\u180e",
    "bidi-marks": "\u200e\u200f\u202e", "combining-acute": "\u0301",
    "grapheme-joiner": "\u034f", "variation-selector": "\ufe0f", "tag-letter": "\U000e0041",
    "line-separator": "\u2028", "control": "\x1b\x07", "mixed": " \u200b\u00a0\u3164\ufeff ",
}
VISIBLE = {
    "ascii": "ok", "accented": "é", "decomposed": "e\u0301", "cjk": "理由", "arabic-digit": "٣",
    "dash": "—", "tick": "✓", "emoji": "🙂", "full-stop": ".",
    "wrapped-in-zero-width": "\u200bok\u200b",
}


@pytest.mark.parametrize("text", INVISIBLE.values(), ids=INVISIBLE.keys())
def test_invisible_text_is_refused(text: str) -> None:
    """A string of spaces, controls, format characters, combining marks or blank letters has
    nothing visible, and is refused with the caller's words first."""
    assert not has_visible(text)
    with pytest.raises(ValueError, match=r"^a hold needs a reason: at least one visible"):
        visible_text(text, "a hold needs a reason")


@pytest.mark.parametrize("text", VISIBLE.values(), ids=VISIBLE.keys())
def test_visible_text_is_kept(text: str) -> None:
    """Any letter, digit, punctuation or symbol, in any script, is visible; the text comes
    back stripped of surrounding white space only."""
    assert has_visible(text)
    assert visible_text(f"  {text}\n", "a reason") == text
