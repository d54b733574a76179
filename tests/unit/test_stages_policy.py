"""Policy packs with ordered review stages and a cooling-off (issue 14): what is accepted,
what is refused (file, rule and field named), and that packs without them decide and digest
exactly as before."""

from __future__ import annotations

from pathlib import Path

import pytest
from policy_builders import GOOD_RULE, PACK_HEADER, write_pack

from retentiond.policy import Facts, PolicyError, load_policy_set, stages_for

TWO = '[{ name = "service", group = "Service-Managers" }, { name = "ig", group = "ig" }]'


def _rule(**fields: str) -> str:
    text = GOOD_RULE.format(rule_id="r1")
    for key, value in fields.items():
        if value == "DROP":
            text = "\n".join(line for line in text.splitlines()
                             if line.split("=")[0].strip() != key) + "\n"
        elif f"\n{key} =" in text:
            text = "\n".join(f"{key} = {value}" if line.split("=")[0].strip() == key else line
                             for line in text.splitlines()) + "\n"
        else:
            text += f"{key} = {value}\n"
    return text


def _load(tmp_path: Path, text: str):
    return load_policy_set([write_pack(tmp_path, "p.toml", PACK_HEADER.format(name="p") + text)])


def _problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        _load(tmp_path, text)
    return info.value.problems


def test_stages_are_read_in_order_with_group_names_normalised(tmp_path):
    policy = _load(tmp_path, _rule(approvals_required="DROP", stages=TWO,
                                   cooling_off_days="7"))
    (rule,) = policy.rules
    assert [(s.name, s.group) for s in rule.stages] == [("service", "service-managers"),
                                                         ("ig", "ig")]
    assert rule.cooling_off_days == 7


def test_when_leaves_a_stage_out(tmp_path):
    stages = ('[{ name = "a", group = "g1" }, '
              '{ name = "dpo", group = "dpo", when = { has_flags = ["sensitive"] } }]')
    (rule,) = _load(tmp_path, _rule(approvals_required="DROP", stages=stages)).rules
    plain = Facts(category="test.record", flags=frozenset())
    flagged = Facts(category="test.record", flags=frozenset({"sensitive"}))
    assert [s.name for s in stages_for(rule, plain)] == ["a"]
    assert [s.name for s in stages_for(rule, flagged)] == ["a", "dpo"]


@pytest.mark.parametrize(("fields", "where", "words"), [
    pytest.param({"stages": "[]"}, "rule 'r1'.stages", "must be a non-empty list",
                 id="empty"),
    pytest.param({"stages": '[{ name = "a", group = "g", who = "x" }]'},
                 "rule 'r1'.stages[0].who", "unknown field", id="unknown-key"),
    pytest.param({"stages": '[{ name = "a", group = "g" }, { name = "A", group = "h" }]'},
                 "rule 'r1'.stages[1].name", "names an earlier stage too", id="duplicate"),
    pytest.param({"stages": "[" + ", ".join(f'{{ name = "s{i}", group = "g" }}'
                                             for i in range(6)) + "]"},
                 "rule 'r1'.stages", "at most 5", id="more-than-five"),
    pytest.param({"stages": TWO, "approvals_required": "2"},
                 "rule 'r1'.approvals_required", "give stages or a count, not both",
                 id="stages-and-count"),
    pytest.param({"stages": '[{ name = "a", group = "g h" }]'},
                 "rule 'r1'.stages[0].group", "not allowed in a group name",
                 id="group-with-a-space"),
    pytest.param({"stages": '[{ name = "a", group = "g\\u200b" }]'},
                 "rule 'r1'.stages[0].group", "U+200B", id="group-with-invisible-char"),
    pytest.param({"stages": '[{ name = "a" }]'}, "rule 'r1'.stages[0].group", "is required",
                 id="no-group"),
    pytest.param({"stages": TWO, "approvals_required": "DROP", "auto_approve": "true"},
                 "rule 'r1'.auto_approve", "approved by a person", id="stages-and-auto"),
    pytest.param({"cooling_off_days": "366"}, "rule 'r1'.cooling_off_days",
                 "between 0 and 365", id="cooling-too-long"),
    pytest.param({"cooling_off_days": "-1"}, "rule 'r1'.cooling_off_days",
                 "between 0 and 365", id="cooling-negative"),
    pytest.param({"cooling_off_days": '"7"'}, "rule 'r1'.cooling_off_days",
                 "whole number", id="cooling-not-a-number"),
])
def test_bad_stages_are_refused_naming_file_rule_and_field(tmp_path, fields, where, words):
    problems = _problems(tmp_path, _rule(**fields))
    assert any(p.startswith(f"{tmp_path / 'policies' / 'p.toml'}: {where}: ") and words in p
               for p in problems), problems


def test_pack_defaults_apply_to_rules_that_set_neither(tmp_path):
    defaults = f"\n[defaults]\nstages = {TWO}\ncooling_off_days = 3\n"
    text = (defaults + _rule(approvals_required="DROP")
            + GOOD_RULE.format(rule_id="r2").replace('category = "test.record"',
                                                     'category = "test.other"'))
    policy = _load(tmp_path, text)
    by_id = {r.id: r for r in policy.rules}
    assert [s.group for s in by_id["r1"].stages] == ["service-managers", "ig"]
    # r2 says approvals_required = 1 itself: a count rule, with the pack's cooling-off.
    assert by_id["r2"].stages == ()
    assert by_id["r1"].cooling_off_days == by_id["r2"].cooling_off_days == 3


def test_bad_defaults_are_refused(tmp_path):
    problems = _problems(tmp_path, "\n[defaults]\nstages = []\nwait = 1\n" + _rule())
    assert any(": defaults.stages: " in p for p in problems)
    assert any(": defaults.wait: unknown field" in p for p in problems)


def test_a_pack_without_stages_digests_as_before(tmp_path):
    """Upgrading recomputes nothing: the category digest of a rule without stages or
    cooling-off is what it was before they existed."""
    import hashlib
    from dataclasses import replace

    policy = _load(tmp_path, _rule())
    (rule,) = policy.rules
    expected = hashlib.sha256(repr(replace(rule, source="")).encode()).hexdigest()[:16]
    assert policy.category_digest("test.record") == expected
    (tmp_path / "b").mkdir()
    staged = _load(tmp_path / "b", _rule(approvals_required="DROP", stages=TWO))
    assert staged.category_digest("test.record") != expected
