"""Words for people, one way everywhere (pages, saved filter descriptions, emails, certificates).

Dates are GOV.UK style, ``2029-03-01`` -> ``1 March 2029``, no leading zero, the month in
words. ``wording.certificates`` says what a certificate states, for the PDF and the email
alike (a leaf: certificates and notify both read it, neither through the other)."""

from __future__ import annotations

import datetime as dt
import textwrap


def long_date(value: dt.date | str | None) -> str:
    """``2029-03-01`` (a date or its ISO text) -> ``1 March 2029``; ``""`` for nothing."""
    if value is None or value == "":
        return ""
    day = dt.date.fromisoformat(value) if isinstance(value, str) else value
    return f"{day.day} {day.strftime('%B %Y')}"


def wrap(lines: list[str]) -> str:
    """Paragraphs wrapped at 76 columns; indented lines (lists, links) left as they are."""
    out = []
    for line in lines:
        if line.startswith(" ") or len(line) <= 76:
            out.append(line)
        else:
            out.extend(textwrap.wrap(line, 76, break_long_words=False, break_on_hyphens=False))
    return "\n".join(out) + "\n"
