"""Helpers for the staged-review tests: a pack whose pupil records pass through three ordered
stages (service managers, IG, then the DPO for records flagged ``sensitive``) with a
cooling-off, reviewers in groups, and scopes.

Every value is synthetic: users like ``manager.sch01``, records like ``R-P-001``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from conftest import DEFAULT_PACK

from retentiond.lifecycle.context import Context
from retentiond.lifecycle.groups import add_group, add_member, set_scope
from retentiond.policy import PolicySet, load_policy_set
from retentiond.web.accounts import add_user

STAGES = ('stages = [{ name = "service", group = "service-managers" }, '
          '{ name = "ig", group = "ig" }, '
          '{ name = "dpo", group = "dpo", when = { has_flags = ["sensitive"] } }]')


def staged_pack(folder: Path, *, cooling_off_days: int = 0, stages: str = STAGES) -> Path:
    """The default pack with pupil records reviewed in stages (and ``cooling_off_days``)."""
    text = DEFAULT_PACK.read_text(encoding="utf-8")
    marker = 'id = "isa.education.pupil_record"'
    head, _, tail = text.partition(marker)
    assert tail, "the default pack no longer has the pupil record rule"
    extra = stages + (f"\ncooling_off_days = {cooling_off_days}" if cooling_off_days else "")
    tail = tail.replace("approvals_required = 1\n", extra + "\n", 1)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "staged.toml"
    path.write_text(head + marker + tail, encoding="utf-8")
    return path


def staged_policy(folder: Path, *, cooling_off_days: int = 0) -> PolicySet:
    policy = load_policy_set([staged_pack(folder, cooling_off_days=cooling_off_days)])
    (rule,) = policy.rules_for("education.pupil_record")
    assert [s.group for s in rule.stages] == ["service-managers", "ig", "dpo"]
    return policy


def with_policy(ctx: Context, policy: PolicySet) -> Context:
    return dataclasses.replace(ctx, policy=policy)


#: user -> (roles, groups)
PEOPLE: dict[str, tuple[str, tuple[str, ...]]] = {
    "manager.sch01": ("approver", ("service-managers",)),
    "manager.sch02": ("approver", ("service-managers",)),
    "officer.ig": ("approver,ig_officer", ("ig",)),
    "officer.ig2": ("approver,ig_officer", ("ig",)),
    "officer.dpo": ("approver", ("dpo",)),
    # One person in two groups: may approve either stage, never both of one case.
    "officer.both": ("approver", ("service-managers", "ig")),
}


def seed_reviewers(ctx: Context) -> None:
    """The groups, their members (as web users) and the managers' school scopes."""
    for group in ("service-managers", "ig", "dpo"):
        add_group(ctx, group, label=group.replace("-", " ").capitalize())
    for user, (roles, groups) in PEOPLE.items():
        add_user(ctx, username=user, roles=roles, password=None)
        for group in groups:
            add_member(ctx, group, user)
    set_scope(ctx, "user", "manager.sch01", controllers=["SCH-01"], categories=[])
    set_scope(ctx, "user", "manager.sch02", controllers=["SCH-02"], categories=[])
