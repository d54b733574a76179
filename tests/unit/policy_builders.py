"""Small builders for rules, policy sets and packs used by the unit tests (no I/O)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from retentiond.policy import Alternative, Condition, Period, PolicySet, Rule
from retentiond.policy.model import ALWAYS

D = dt.date
CATEGORY = "test.record"


def alt(
    trigger: str,
    period: str,
    *,
    when: Condition = ALWAYS,
    round_to: str | None = None,
    after_period_end: bool = False,
    missing_day: str = "next_day",
) -> Alternative:
    """One alternative, with the period written as in a policy file."""
    return Alternative(
        when=when, trigger=trigger, period=Period.parse(period), round_to=round_to,
        after_period_end=after_period_end, missing_day=missing_day,
    )


def rule(
    rule_id: str,
    *alternatives: Alternative,
    category: str = CATEGORY,
    action: str = "delete",
    approvals_required: int = 1,
    auto_approve: bool = False,
    when: Condition = ALWAYS,
) -> Rule:
    """A rule with a citation derived from its id."""
    return Rule(
        id=rule_id, category=category, title=rule_id, alternatives=alternatives,
        action=action, approvals_required=approvals_required, auto_approve=auto_approve,
        citation=f"citation for {rule_id}", source="test", when=when,
    )


def policy(*rules: Rule, version: str = "testversion0000") -> PolicySet:
    """A policy set made directly from rules, without loading any file."""
    return PolicySet(version=version, packs=(), rules=rules)


PACK_HEADER = '[pack]\nname = "{name}"\ntitle = "Test pack {name}"\n'

GOOD_RULE = """
[[rules]]
id = "{rule_id}"
category = "test.record"
title = "A test rule"
trigger = "opened_on"
period = "6y"
action = "delete"
approvals_required = 1
auto_approve = false
citation = "Test citation"
"""


def pack_text(name: str = "p", *rule_ids: str) -> str:
    """The text of a valid pack with one good rule per id (``r1`` when none is given)."""
    body = "".join(GOOD_RULE.format(rule_id=r) for r in (rule_ids or ("r1",)))
    return PACK_HEADER.format(name=name) + body


def write_pack(tmp_path: Path, filename: str, content: str | bytes) -> Path:
    """Write a pack under ``tmp_path/policies`` and return its path."""
    folder = tmp_path / "policies"
    folder.mkdir(exist_ok=True)
    path = folder / filename
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path
