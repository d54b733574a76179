"""Categories in words, for the people a certificate or a notice is written for."""

from __future__ import annotations

from retentiond.policy.model import PolicySet


def category_words(policy: PolicySet) -> dict[str, str]:
    """Each category's name in words, for a school: the first part of its rule's title
    ("Education data: until ..." -> "Education data"), else the code made readable."""
    words: dict[str, str] = {}
    for rule in sorted(policy.rules, key=lambda r: r.id):
        if rule.category not in words and rule.title:
            words[rule.category] = rule.title.split(":", 1)[0].strip()
    return words


def readable(code: str) -> str:
    family, _, kind = code.partition(".")
    text = (kind or family).replace("_", " ")
    return f"{text[:1].upper()}{text[1:]}" + (f" ({family.replace('_', ' ')})" if kind else "")
