"""Loading and validating policy packs: every bad input is refused naming file, rule and field."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import pytest
from policy_builders import GOOD_RULE, PACK_HEADER, pack_text, write_pack

from retentiond.policy import Condition, Period, PolicyError, load_policy_set

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PACK = REPO / "policies" / "isa-default.toml"


def problems_for(tmp_path: Path, content: str | bytes, filename: str = "bad.toml") -> tuple[
    Path, list[str]
]:
    """Load one pack that must be refused; return its path and the problems reported."""
    path = write_pack(tmp_path, filename, content)
    with pytest.raises(PolicyError) as info:
        load_policy_set([path])
    return path, info.value.problems


def rule_with(**fields: str) -> str:
    """A pack with one rule ``r1`` whose TOML lines are replaced or added by ``fields``.

    Each value is the raw TOML right-hand side; the value ``"DROP"`` removes the field.
    """
    lines = GOOD_RULE.format(rule_id="r1").strip().splitlines()
    out = [lines[0]]
    seen = set()
    for line in lines[1:]:
        key = line.split("=")[0].strip()
        if key in fields:
            seen.add(key)
            if fields[key] != "DROP":
                out.append(f"{key} = {fields[key]}")
        else:
            out.append(line)
    out += [f"{k} = {v}" for k, v in fields.items() if k not in seen and v != "DROP"]
    return PACK_HEADER.format(name="p") + "\n" + "\n".join(out) + "\n"


ALTS_RULE = """
[[rules]]
id = "r1"
category = "test.record"
action = "delete"
citation = "Test citation"
{extra}
  [[rules.alternatives]]
  when = {first_when}
  trigger = "{first_trigger}"
  period = "15y"

  [[rules.alternatives]]
  {last_when}
  trigger = "date_of_birth"
  period = "75y"
"""


def alts_pack(
    *, extra: str = "", first_when: str = "{ died_before_age = 18 }",
    first_trigger: str = "date_of_death", last_when: str = "",
) -> str:
    """A pack with one rule ``r1`` written with two [[rules.alternatives]]."""
    return PACK_HEADER.format(name="p") + ALTS_RULE.format(
        extra=extra, first_when=first_when, first_trigger=first_trigger, last_when=last_when,
    )


# (pack text, where the problem is, a fragment of its message)
BAD_PACKS = [
    pytest.param(rule_with(retention='"6y"'), "rule 'r1'.retention",
                 "unknown field (allowed: action, after_period_end, alternatives",
                 id="unknown-rule-field"),
    pytest.param(pack_text().replace('title = "Test pack p"', 'title = "T"\nowner = "x"'),
                 "pack.owner", "unknown field (allowed: description, name", id="unknown-pack-field"),
    pytest.param(pack_text() + '\n[extra]\nx = 1\n', "extra",
                 "unknown field (allowed: categories, defaults, pack, rules)", id="unknown-top-level-table"),
    pytest.param(rule_with(when="{ died_before = 18 }"), "rule 'r1'.when.died_before",
                 "unknown field (allowed: age_at_closure_at_least", id="unknown-condition-field"),
    pytest.param(alts_pack(last_when='rounding = "x"'), "rule 'r1'.alternatives[1].rounding",
                 "unknown field (allowed: after_period_end, missing_day, note",
                 id="unknown-alternative-field"),
    pytest.param(rule_with(trigger='"date_of_report"'), "rule 'r1'.trigger",
                 "unknown trigger 'date_of_report' (one of: date_of_birth, date_of_death, "
                 "opened_on, closed_on, event_on)", id="unknown-trigger"),
    pytest.param(alts_pack(first_trigger="death_date"), "rule 'r1'.alternatives[0].trigger",
                 "unknown trigger 'death_date'", id="unknown-trigger-in-alternative"),
    pytest.param(rule_with(action='"destroy"'), "rule 'r1'.action",
                 "unknown action 'destroy' (one of: review, transfer, return, anonymise, delete)",
                 id="unknown-action"),
    pytest.param(rule_with(action="DROP"), "rule 'r1'.action", "is required",
                 id="missing-action"),
    pytest.param(rule_with(round_to='"school_year_end"'), "rule 'r1'.round_to",
                 "unknown rounding 'school_year_end' (one of: academic_year_end, "
                 "financial_year_end, calendar_year_end)", id="unknown-rounding"),
    pytest.param(rule_with(round_to='["academic_year_end"]'), "rule 'r1'.round_to",
                 "unknown rounding ['academic_year_end']", id="rounding-not-a-string"),
    pytest.param(rule_with(round_to="{ a = 1 }"), "rule 'r1'.round_to",
                 "unknown rounding {'a': 1}", id="rounding-a-table"),
    pytest.param(rule_with(missing_day='"previous_day"'), "rule 'r1'.missing_day",
                 "must be one of next_day, last_day, not 'previous_day'", id="bad-missing-day"),
    pytest.param(rule_with(after_period_end='"yes"'), "rule 'r1'.after_period_end",
                 "must be true or false, not 'yes'", id="after-period-end-not-bool"),
    pytest.param(rule_with(period='"25 years"'), "rule 'r1'.period",
                 "'25 years' is not a period such as '25y', '6y', '1y6m', '3m' or '30d'",
                 id="bad-period-words"),
    pytest.param(rule_with(period='"6m1y"'), "rule 'r1'.period", "'6m1y' is not a period",
                 id="bad-period-order"),
    pytest.param(rule_with(period="25"), "rule 'r1'.period",
                 "must be a non-empty string, not 25", id="bad-period-number"),
    pytest.param(rule_with(period='""'), "rule 'r1'.period",
                 "must be a non-empty string, not ''", id="bad-period-empty"),
    pytest.param(rule_with(period="DROP"), "rule 'r1'.period", "is required",
                 id="missing-period"),
    pytest.param(rule_with(trigger="DROP"), "rule 'r1'.trigger", "is required",
                 id="missing-trigger"),
    pytest.param(rule_with(approvals_required="0"), "rule 'r1'.approvals_required",
                 "must be between 1 and 5, not 0", id="approvals-zero"),
    pytest.param(rule_with(approvals_required="6"), "rule 'r1'.approvals_required",
                 "must be between 1 and 5, not 6", id="approvals-six"),
    pytest.param(rule_with(approvals_required='"two"'), "rule 'r1'.approvals_required",
                 "must be a whole number, not 'two'", id="approvals-not-a-number"),
    pytest.param(rule_with(approvals_required="true"), "rule 'r1'.approvals_required",
                 "must be a whole number, not True", id="approvals-boolean"),
    pytest.param(rule_with(approvals_required="2", auto_approve="true"),
                 "rule 'r1'.auto_approve",
                 "cannot be true when approvals_required is more than 1",
                 id="auto-approve-with-two-approvers"),
    pytest.param(rule_with(auto_approve='"no"'), "rule 'r1'.auto_approve",
                 "must be true or false, not 'no'", id="auto-approve-not-bool"),
    pytest.param(rule_with(citation="DROP"), "rule 'r1'.citation", "is required",
                 id="missing-citation"),
    pytest.param(rule_with(citation='"   "'), "rule 'r1'.citation",
                 "must be a non-empty string, not '   '", id="blank-citation"),
    pytest.param(rule_with(category='"Education.Pupil"'), "rule 'r1'.category",
                 "'Education.Pupil' is not a dotted lower-case name such as "
                 "'education.pupil_record'", id="category-upper-case"),
    pytest.param(rule_with(category='"pupil_record"'), "rule 'r1'.category",
                 "'pupil_record' is not a dotted lower-case name", id="category-undotted"),
    pytest.param(rule_with(category="DROP"), "rule 'r1'.category", "is required",
                 id="missing-category"),
    pytest.param(rule_with(id='"R 1"'), "rule 'R 1'.id",
                 "may hold only lower-case letters, digits, '.', '_' and '-'", id="bad-rule-id"),
    pytest.param(rule_with(id="DROP"), "rules[0].id", "is required", id="missing-rule-id"),
    pytest.param(alts_pack(last_when="when = { deceased = false }"),
                 "rule 'r1'.alternatives[1].when",
                 "the last alternative must have no condition, so that every record is covered",
                 id="last-alternative-with-condition"),
    pytest.param(alts_pack(extra='trigger = "opened_on"\nperiod = "6y"'), "rule 'r1'",
                 "give either trigger/period or [[rules.alternatives]], not both",
                 id="inline-and-alternatives"),
    pytest.param(rule_with(trigger="DROP", period="DROP", alternatives="[]"),
                 "rule 'r1'.alternatives", "must be a non-empty list of tables",
                 id="empty-alternatives"),
    pytest.param(rule_with(trigger="DROP", period="DROP", alternatives="[1]"),
                 "rule 'r1'.alternatives[0]", "must be a table", id="alternative-not-a-table"),
    pytest.param(rule_with(when="{}"), "rule 'r1'.when",
                 "is empty: leave it out to mean 'always'", id="empty-condition"),
    pytest.param(rule_with(when='"always"'), "rule 'r1'.when",
                 "must be a table of conditions, not 'always'", id="condition-not-a-table"),
    pytest.param(rule_with(when="{ died_before_age = -1 }"), "rule 'r1'.when.died_before_age",
                 "must be between 0 and 150, not -1", id="died-before-age-negative"),
    pytest.param(rule_with(when='{ age_at_closure_at_least = "17" }'),
                 "rule 'r1'.when.age_at_closure_at_least", "must be a whole number, not '17'",
                 id="age-at-closure-not-a-number"),
    pytest.param(rule_with(when="{ age_at_closure_below = 151 }"),
                 "rule 'r1'.when.age_at_closure_below", "must be between 0 and 150, not 151",
                 id="age-at-closure-out-of-range"),
    pytest.param(rule_with(when="{ has_flags = 3 }"), "rule 'r1'.when.has_flags",
                 "must be a list of flag names, not 3", id="has-flags-not-a-list"),
    pytest.param(rule_with(when='{ lacks_flags = ["ok", ""] }'), "rule 'r1'.when.lacks_flags",
                 "must be a list of flag names, not ['ok', '']", id="lacks-flags-empty-name"),
    pytest.param(rule_with(when='{ deceased = "yes" }'), "rule 'r1'.when.deceased",
                 "must be true or false, not 'yes'", id="deceased-not-bool"),
    pytest.param(alts_pack(first_when='{ deceased = true }\n  note = 5'),
                 "rule 'r1'.alternatives[0].note", "must be a string", id="note-not-a-string"),
    pytest.param(PACK_HEADER.format(name="p"), "rules",
                 "a pack needs at least one [[rules]] table", id="no-rules"),
    pytest.param("rules = [1]\n" + PACK_HEADER.format(name="p"), "rules[0]",
                 "must be a table ([[rules]])", id="rule-not-a-table"),
    pytest.param(GOOD_RULE.format(rule_id="r1"), "pack",
                 "a [pack] table with at least name and title is required", id="no-pack-table"),
    pytest.param(pack_text().replace('name = "p"\n', ""), "pack.name", "is required",
                 id="pack-without-name"),
    pytest.param(pack_text().replace("[pack]\n", "[pack]\nrequires_local_signoff = 1\n"),
                 "pack.requires_local_signoff", "must be true or false, not 1",
                 id="signoff-flag-not-bool"),
    pytest.param(pack_text().replace("[pack]\n", '[pack]\nsigned_off_on = "1 Sept"\n'),
                 "pack.signed_off_on", "must be a date such as 2026-09-01",
                 id="signed-off-on-not-a-date"),
    pytest.param(pack_text().replace("[pack]\n", "[pack]\nsigned_off_on = 2026-09-01T10:00:00\n"),
                 "pack.signed_off_on", "must be a date such as 2026-09-01",
                 id="signed-off-on-a-datetime"),
    pytest.param(pack_text().replace("[pack]\n", "[pack]\nsigned_off_by = 7\n"),
                 "pack.signed_off_by", "must be a non-empty string, not 7",
                 id="signed-off-by-not-a-string"),
]


@pytest.mark.parametrize(("content", "where", "message"), BAD_PACKS)
def test_bad_pack_is_refused(tmp_path: Path, content: str, where: str, message: str) -> None:
    """A bad pack is refused; the problem names the file, the rule and the field."""
    path, problems = problems_for(tmp_path, content)
    prefix = f"{path}: {where}: "
    matching = [p for p in problems if p.startswith(prefix)]
    assert matching, f"no problem starts with {prefix!r}: {problems}"
    assert any(message in p[len(prefix):] for p in matching), problems


def test_bad_toml(tmp_path: Path) -> None:
    """A file that is not TOML is refused as a whole, with the parser's line and column."""
    path, problems = problems_for(tmp_path, '[pack]\nname = "p\n')
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: file: is not valid TOML: ")
    assert "line 2" in problems[0]


def test_not_utf8(tmp_path: Path) -> None:
    """A file that is not UTF-8 is refused, naming the file."""
    content = pack_text().replace("Test citation", "Test citation \xa7 5").encode("latin-1")
    path, problems = problems_for(tmp_path, content)
    assert len(problems) == 1
    assert problems[0].startswith(f"{path}: file: is not UTF-8: ")


def test_unreadable_file(tmp_path: Path) -> None:
    """A named file that does not exist is reported, not raised as an OSError."""
    missing = tmp_path / "policies" / "missing.toml"
    with pytest.raises(PolicyError) as info:
        load_policy_set([missing])
    assert info.value.problems == [f"{missing}: file: cannot be read: No such file or directory"]


def test_no_files(tmp_path: Path) -> None:
    """An empty directory is refused: there must be a policy to run under."""
    (tmp_path / "policies").mkdir()
    with pytest.raises(PolicyError) as info:
        load_policy_set([tmp_path / "policies"])
    assert info.value.problems == [
        "no policy files given (name a .toml file or a directory of them)"
    ]


def test_duplicate_rule_id_across_files(tmp_path: Path) -> None:
    """Two files defining the same rule id are refused, the second naming the first."""
    first = write_pack(tmp_path, "a.toml", pack_text("a", "shared", "only-a"))
    second = write_pack(tmp_path, "b.toml", pack_text("b", "shared"))
    with pytest.raises(PolicyError) as info:
        load_policy_set([tmp_path / "policies"])
    assert info.value.problems == [f"{second}: rule 'shared'.id: is also the id of a rule in {first}"]


def test_duplicate_rule_id_within_file(tmp_path: Path) -> None:
    """The same rule id twice in one file is refused too."""
    path, problems = problems_for(tmp_path, pack_text("p", "dup", "dup"))
    assert problems == [f"{path}: rule 'dup'.id: is also the id of a rule in {path}"]


def test_duplicate_pack_name(tmp_path: Path) -> None:
    """Two files with the same pack name are refused (the version is keyed by pack name)."""
    write_pack(tmp_path, "a.toml", pack_text("same", "r1"))
    write_pack(tmp_path, "b.toml", pack_text("same", "r2"))
    with pytest.raises(PolicyError) as info:
        load_policy_set([tmp_path / "policies"])
    assert info.value.problems == ["pack name 'same' is used by more than one file"]


def test_every_problem_is_listed(tmp_path: Path) -> None:
    """All problems in all files are reported at once, not only the first."""
    write_pack(tmp_path, "a.toml", rule_with(action='"destroy"', period='"6 years"'))
    other = write_pack(tmp_path, "b.toml", pack_text("b", "x").replace("opened_on", "nope"))
    with pytest.raises(PolicyError) as info:
        load_policy_set([tmp_path / "policies"])
    wheres = [p.split(": ")[1] for p in info.value.problems]
    assert wheres == ["rule 'r1'.action", "rule 'r1'.period", "rule 'x'.trigger"]
    assert info.value.problems[-1].startswith(f"{other}: ")
    assert str(info.value) == "; ".join(info.value.problems)


def test_one_bad_pack_refuses_the_set(tmp_path: Path) -> None:
    """A good pack beside a bad one is not loaded on its own: nothing is partly loaded."""
    write_pack(tmp_path, "good.toml", pack_text("good", "g1"))
    write_pack(tmp_path, "bad.toml", rule_with(action='"destroy"'))
    with pytest.raises(PolicyError):
        load_policy_set([tmp_path / "policies"])


# --- what a good pack becomes ------------------------------------------------------------


def test_default_pack_loads() -> None:
    """The shipped seed pack loads with its four rules and metadata."""
    ps = load_policy_set([DEFAULT_PACK])
    assert [r.id for r in ps.rules] == [
        "isa.education.pupil_record", "isa.safeguarding.referral",
        "isa.child_protection.case", "isa.looked_after.case_record",
    ]
    assert ps.categories == {
        "education.pupil_record", "safeguarding.referral", "child_protection.case",
        "looked_after.case_record",
    }
    (pack,) = ps.packs
    assert pack.name == "isa-default"
    assert pack.requires_local_signoff is False
    assert pack.digest == hashlib.sha256(DEFAULT_PACK.read_bytes()).hexdigest()
    lac = ps.rules_for("looked_after.case_record")[0]
    assert [a.when for a in lac.alternatives] == [Condition(died_before_age=18), Condition()]
    assert [a.period for a in lac.alternatives] == [Period(years=15), Period(years=75)]


def test_inline_rule_fields(tmp_path: Path) -> None:
    """An inline trigger/period becomes one unconditional alternative with every option set."""
    text = rule_with(round_to='"academic_year_end"', after_period_end="true",
                     missing_day='"last_day"', note='"why"', when='{ has_flags = "sen" }')
    ps = load_policy_set([write_pack(tmp_path, "p.toml", text)])
    (r,) = ps.rules
    (a,) = r.alternatives
    assert (a.trigger, a.period, a.round_to, a.after_period_end, a.missing_day, a.note) == (
        "opened_on", Period(years=6), "academic_year_end", True, "last_day", "why",
    )
    assert a.when == Condition()
    assert r.when == Condition(has_flags=frozenset({"sen"}))
    assert r.source == f"{tmp_path / 'policies' / 'p.toml'}#p"
    assert (r.action, r.approvals_required, r.auto_approve) == ("delete", 1, False)


def test_defaults(tmp_path: Path) -> None:
    """Omitted approvals_required is 1, auto_approve false, missing_day next_day, no rounding."""
    text = rule_with(approvals_required="DROP", auto_approve="DROP", title="DROP")
    (r,) = load_policy_set([write_pack(tmp_path, "p.toml", text)]).rules
    assert (r.approvals_required, r.auto_approve, r.title) == (1, False, "r1")
    (a,) = r.alternatives
    assert (a.missing_day, a.round_to, a.after_period_end) == ("next_day", None, False)


def test_rule_level_note_with_alternatives(tmp_path: Path) -> None:
    """A note on a rule that has [[rules.alternatives]] documents it; it is not a conflict."""
    ps = load_policy_set([write_pack(tmp_path, "p.toml", alts_pack(extra='note = "about"'))])
    assert len(ps.rules[0].alternatives) == 2


def test_pack_signoff_fields(tmp_path: Path) -> None:
    """The pack's local sign-off fields are kept on the loaded pack."""
    text = pack_text().replace(
        "[pack]\n",
        '[pack]\nrequires_local_signoff = true\nsigned_off_by = "IG lead"\n'
        'signed_off_on = 2026-09-01\ndescription = "d"\n',
    )
    (pack,) = load_policy_set([write_pack(tmp_path, "p.toml", text)]).packs
    assert pack.requires_local_signoff is True
    assert pack.signed_off_by == "IG lead"
    assert pack.signed_off_on == dt.date(2026, 9, 1)
    assert pack.description == "d"


# --- the version -------------------------------------------------------------------------


def test_version_is_stable(tmp_path: Path) -> None:
    """The same packs always give the same 16-hex-digit version."""
    write_pack(tmp_path, "a.toml", pack_text("a", "r1"))
    write_pack(tmp_path, "b.toml", pack_text("b", "r2"))
    v1 = load_policy_set([tmp_path / "policies"]).version
    v2 = load_policy_set([tmp_path / "policies"]).version
    assert v1 == v2
    assert len(v1) == 16
    assert set(v1) <= set("0123456789abcdef")


def test_version_ignores_order_and_location(tmp_path: Path) -> None:
    """Naming the files in another order, or from another directory, keeps the version."""
    a = write_pack(tmp_path, "a.toml", pack_text("a", "r1"))
    b = write_pack(tmp_path, "b.toml", pack_text("b", "r2"))
    elsewhere = tmp_path / "copy"
    elsewhere.mkdir()
    shutil.copy(a, elsewhere / "renamed-a.toml")
    shutil.copy(b, elsewhere / "b.toml")
    versions = {
        load_policy_set([a, b]).version,
        load_policy_set([b, a]).version,
        load_policy_set([tmp_path / "policies"]).version,
        load_policy_set([elsewhere]).version,
    }
    assert len(versions) == 1


@pytest.mark.parametrize(
    ("old", "new"),
    [
        pytest.param('period = "6y"', 'period = "7y"', id="period"),
        pytest.param('citation = "Test citation"', 'citation = "Other citation"', id="citation"),
        pytest.param('name = "a"', 'name = "a2"', id="pack-name"),
        pytest.param("[pack]\n", "# a comment\n[pack]\n", id="comment-only"),
    ],
)
def test_version_changes_with_content(tmp_path: Path, old: str, new: str) -> None:
    """Any change to a pack's bytes or name gives a new version."""
    path = write_pack(tmp_path, "a.toml", pack_text("a", "r1"))
    before = load_policy_set([path]).version
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))
    assert load_policy_set([path]).version != before


def test_version_changes_when_a_pack_is_added(tmp_path: Path) -> None:
    """Adding a pack to the set gives a new version."""
    a = write_pack(tmp_path, "a.toml", pack_text("a", "r1"))
    b = write_pack(tmp_path, "b.toml", pack_text("b", "r2"))
    assert load_policy_set([a]).version != load_policy_set([a, b]).version


def test_category_digest_tracks_rules_not_location(tmp_path: Path) -> None:
    """A category's digest changes with its rules, not with where the pack file lives."""
    a = write_pack(tmp_path, "a.toml", pack_text("a", "r1"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(a, elsewhere / "a.toml")
    here = load_policy_set([a]).category_digest("test.record")
    assert load_policy_set([elsewhere]).category_digest("test.record") == here
    a.write_text(a.read_text().replace('period = "6y"', 'period = "7y"'))
    assert load_policy_set([a]).category_digest("test.record") != here


# --- category labels --------------------------------------------------------------------------

def test_category_labels_are_read_and_unlabelled_codes_get_words(tmp_path: Path) -> None:
    """A pack's [categories."CODE"] label names the category for people; a category no pack
    labels gets words made from its code."""
    text = rule_with() + '\n[categories."test.record"]\nlabel = "Test record"\n'
    policy = load_policy_set([write_pack(tmp_path, "p.toml", text)])
    assert policy.category_label("test.record") == "Test record"
    assert policy.category_label("looked_after.case_record") == "Case record (looked after)"
    assert policy.category_label("a.b.some_thing") == "Some thing (a, b)"


def test_default_packs_label_every_category_they_name() -> None:
    """Every category of the packs shipped has a label of its own (no fallback wording)."""
    from retentiond.policy.model import fallback_label

    policy = load_policy_set([DEFAULT_PACK, REPO / "policies" / "england-wider.toml"])
    for category in policy.categories:
        assert policy.category_label(category) != fallback_label(category), category


@pytest.mark.parametrize(("table", "expected"), [
    ('[categories."Bad Code"]\nlabel = "x"', "categories.'Bad Code': 'Bad Code' is not a dotted"),
    ('[categories."test.record"]\nlabel = ""', "categories.'test.record'.label: must be a non-empty"),
    ('[categories."test.record"]\nname = "x"', "categories.'test.record'.name: unknown field"),
    ('[categories."test.record"]', "categories.'test.record'.label: is required"),
    ('categories = "x"', "categories: must be tables"),
    ('[categories."test.record"]\nlabel = "' + "x" * 121 + '"', "at most 120 characters"),
])
def test_bad_category_labels_are_refused(tmp_path: Path, table: str, expected: str) -> None:
    """A malformed label table is refused naming the file and the category."""
    if table.startswith("categories ="):
        text = table + "\n" + rule_with()  # a top-level key comes before any table
    else:
        text = rule_with() + "\n" + table + "\n"
    path, problems = problems_for(tmp_path, text)
    assert any(p.startswith(f"{path}: ") and expected in p for p in problems), problems


def test_two_packs_may_not_label_one_category_differently(tmp_path: Path) -> None:
    """One category, one label: two packs disagreeing are refused, naming both files."""
    a = write_pack(tmp_path, "a.toml", rule_with() + '\n[categories."test.record"]\nlabel = "A"\n')
    other = rule_with().replace('name = "p"', 'name = "q"').replace('"r1"', '"r2"')
    b = write_pack(tmp_path, "b.toml", other + '\n[categories."test.record"]\nlabel = "B"\n')
    with pytest.raises(PolicyError) as info:
        load_policy_set([a, b])
    assert any(str(b) in p and str(a) in p and "one category, one label" in p
               for p in info.value.problems), info.value.problems
