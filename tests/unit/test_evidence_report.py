"""Rule evidence (source_quote, source_url, basis, local_reading) and the sign-off report."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from policy_builders import D, write_pack

from retentiond.cli.commands import evidence_warnings
from retentiond.policy import BASES, Facts, PolicyError, decide, load_policy_set
from retentiond.policy.report import build_report, day, render_html

REPO = Path(__file__).resolve().parents[2]
DEFAULT_PACK = REPO / "policies" / "isa-default.toml"
WIDER_PACK = REPO / "policies" / "england-wider.toml"

HEADER = '[pack]\nname = "ev"\ntitle = "Evidence test"\nrequires_local_signoff = true\n'
RULE = """
[[rules]]
id = "ev.referral"
category = "test.record"
trigger = "opened_on"
period = "6y"
action = "delete"
citation = "Test citation"
{extra}
"""
EVIDENCE = ('basis = "statute"\nsource_quote = "must be kept for at least six years"\n'
            'source_url = "https://example.org/si/1"\n')


def pack(tmp_path: Path, extra: str = "", header: str = HEADER, name: str = "ev.toml") -> Path:
    """A one-rule pack with ``extra`` lines in its rule."""
    return write_pack(tmp_path, name, header + RULE.format(extra=extra))


def test_evidence_fields_are_loaded(tmp_path: Path) -> None:
    """The four evidence fields and the rule's note are read into the rule."""
    extra = EVIDENCE + 'local_reading = "the trigger is ours"\nnote = "opened_on is the report"\n'
    (rule,) = load_policy_set([pack(tmp_path, extra)]).rules
    ev = rule.evidence
    assert (ev.basis, ev.source_quote, ev.source_url, ev.local_reading) == (
        "statute", "must be kept for at least six years", "https://example.org/si/1",
        "the trigger is ours")
    assert rule.note == "opened_on is the report"
    assert ev.missing() == ()


@pytest.mark.parametrize(("extra", "field", "message"), [
    ('basis = "folklore"', "basis", "unknown basis 'folklore'"),
    ('basis = "local_reading"', "local_reading", "is required when basis is 'local_reading'"),
    ('source_url = "javascript:alert(1)"', "source_url", "is not an http(s) address"),
    ('source_url = "https://example.org/a b"', "source_url", "is not an http(s) address"),
    ('source_quote = ""', "source_quote", "must be a non-empty string"),
    ("source_quote = 3", "source_quote", "must be a non-empty string"),
    ('basis = "statute"\nsource_qoute = "x"', "source_qoute", "unknown field"),
])
def test_bad_evidence_is_refused(tmp_path: Path, extra: str, field: str, message: str) -> None:
    """A wrong evidence field refuses the pack, naming file, rule and field."""
    path = pack(tmp_path, extra)
    with pytest.raises(PolicyError) as err:
        load_policy_set([path])
    assert any(p.startswith(f"{path}: rule 'ev.referral'.{field}: ") and message in p
               for p in err.value.problems), err.value.problems


@pytest.mark.parametrize("value", ['"abc"', '"' + "A" * 64 + '"', "42", '"' + "0" * 63 + '"'])
def test_bad_report_sha256_is_refused(tmp_path: Path, value: str) -> None:
    """signed_off_report_sha256 must be 64 lower-case hexadecimal digits."""
    path = pack(tmp_path, EVIDENCE, HEADER + f"signed_off_report_sha256 = {value}\n")
    with pytest.raises(PolicyError, match=r"pack\.signed_off_report_sha256: must be"):
        load_policy_set([path])


def test_evidence_changes_no_decision_and_no_digest(tmp_path: Path) -> None:
    """Evidence is words for people: decisions and the category digest (which decides what
    is recomputed) stay the same; the version (the signed-off text) changes."""
    bare = load_policy_set([pack(tmp_path)])
    cited = load_policy_set([pack(tmp_path, EVIDENCE + 'local_reading = "l"\n',
                                  name="ev2.toml")])
    assert bare.category_digest("test.record") == cited.category_digest("test.record")
    assert bare.version != cited.version
    for facts in (Facts(category="test.record", opened_on=D(2020, 2, 29)),
                  Facts(category="test.record")):
        a, b = decide(bare, facts), decide(cited, facts)
        assert (a.due_on, a.action, a.rule_id, a.needs_attention) == (
            b.due_on, b.action, b.rule_id, b.needs_attention)


def test_shipped_seed_pack_digests_unchanged() -> None:
    """Adding evidence to the seed pack recomputes none of its records on upgrade: every
    category digest is what it was before the evidence was written."""
    seed = load_policy_set([DEFAULT_PACK])
    assert {c: seed.category_digest(c) for c in sorted(seed.categories)} == {
        "child_protection.case": "8d60ea4e5134d98e", "education.pupil_record": "41a25052b09e1a95",
        "looked_after.case_record": "05e22511015705a7", "safeguarding.referral": "7297e2b3039a9bf2",
    }


def test_every_shipped_rule_has_a_basis_and_a_quote_or_says_why_not() -> None:
    """Both packs: every rule has a basis; every rule has the source's words, or is a local
    reading that says why; the one exception (the SEN rule, whose toolkit row was not found)
    says so in local_reading and is the only rule policies check warns about."""
    both = load_policy_set([DEFAULT_PACK, WIDER_PACK])
    for rule in both.rules:
        ev = rule.evidence
        assert ev.basis in BASES, rule.id
        assert ev.source_quote or ev.local_reading, rule.id
        if ev.basis == "local_reading" or "local reading" in rule.citation:
            assert ev.local_reading, rule.id
    missing = {r.id: r.evidence.missing() for r in both.rules if r.evidence.missing()}
    assert missing == {"wider.education.sen_record": ("source_quote", "source_url")}
    assert "not retrieved" in (both.rules_for("education.sen_record")[0].evidence.local_reading
                               or "")
    warnings = evidence_warnings(both)
    assert len(warnings) == 2 and all("wider.education.sen_record" in w for w in warnings)


def test_readings_are_marked_as_readings() -> None:
    """The pack's own choices the checks found are said to be local readings."""
    both = load_policy_set([DEFAULT_PACK, WIDER_PACK])
    by_id = {r.id: r for r in both.rules}
    assert "68" in (by_id["wider.safeguarding.lado_allegation.pension_age"].evidence
                    .local_reading or "")
    assert "68" not in by_id["wider.safeguarding.lado_allegation.pension_age"].citation
    assert "Northumberland" in (by_id["isa.child_protection.case"].evidence.local_reading or "")
    assert by_id["wider.health.child_record.after_death"].evidence.basis == "local_reading"
    assert by_id["wider.youth_justice.case_record"].evidence.basis == "local_reading"
    assert "regulation 25A" in by_id["wider.fostering.connected_person_record"].citation


# --- the report -----------------------------------------------------------------------------

def test_report_covers_every_rule_and_termination() -> None:
    """Every rule of both packs is in the report, then the built-in termination rule."""
    both = load_policy_set([DEFAULT_PACK, WIDER_PACK])
    report = build_report(both)
    assert [r.id for r in report.rules][:-1] == sorted(
        [r.id for r in both.rules if r.id.startswith("wider.")]) + sorted(
        [r.id for r in both.rules if r.id.startswith("isa.")])
    last = report.rules[-1]
    assert last.id == "agreement.termination" and "clause 13.1" in last.citation
    assert last.basis == "agreement" and last.source_quote and "securely returned" in \
        last.source_quote
    assert re.fullmatch(r"[0-9a-f]{64}", report.fingerprint)


def test_worked_examples_are_the_engines_dates() -> None:
    """Every worked example's due date is what decide() gives for the same facts: the report
    cannot say a date the engine would not."""
    both = load_policy_set([DEFAULT_PACK, WIDER_PACK])
    report = build_report(both)
    lac = next(r for r in report.rules if r.id == "isa.looked_after.case_record")
    labels = {e.label: e.due_on for e in lac.examples}
    assert labels["When the subject died before age 18"] == day(D(2011, 11, 20).replace(
        year=2026))
    assert labels["Otherwise"] == "14 May 2076"
    assert labels["Date of birth on 29 February"] == "1 March 2079"
    assert labels["No date of birth recorded"] == "never (needs attention)"
    for rule in both.rules:
        examples = next(r for r in report.rules if r.id == rule.id).examples
        assert len(examples) >= len(rule.alternatives) + 1, rule.id


def test_fingerprint_ignores_signing_and_location_but_not_content(tmp_path: Path) -> None:
    """Signing a pack off (or moving it) leaves its report's SHA-256 unchanged, so the pack can
    quote it; changing a quote, a period or an action changes it."""
    text = WIDER_PACK.read_text(encoding="utf-8")
    base = build_report(load_policy_set([WIDER_PACK])).fingerprint
    signed = text.replace('# signed_off_by = "Name, role"', 'signed_off_by = "A. Example, DPO"'
                          ).replace("# signed_off_on = 2026-09-01", "signed_off_on = 2026-09-01")
    moved = write_pack(tmp_path, "england-wider.toml", signed)
    assert build_report(load_policy_set([moved])).fingerprint == base
    for old, new in (('period = "31y"', 'period = "30y"'),
                     ("must be retained for at least 3 years", "must be kept 3 years"),
                     ('approvals_required = 1\nauto_approve = false\ncitation = "Fostering',
                      'approvals_required = 2\nauto_approve = false\ncitation = "Fostering')):
        assert old in text
        changed = write_pack(tmp_path, "england-wider.toml", text.replace(old, new, 1))
        assert build_report(load_policy_set([changed])).fingerprint != base, old


def test_html_escapes_what_a_pack_says(tmp_path: Path) -> None:
    """A quote or note holding markup is shown as text, never run: the report is safe to open
    whoever wrote the pack."""
    hostile = ('basis = "guidance"\nsource_quote = "<script>alert(1)</script>"\n'
               'source_url = "https://example.org/?a=1&b=2"\n'
               'note = "<img src=x onerror=alert(1)>"\n')
    page = render_html(build_report(load_policy_set([pack(tmp_path, hostile)])))
    assert "<script>" not in page and "<img" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert 'href="https://example.org/?a=1&amp;b=2"' in page


def test_signed_off_report_is_checked_against_the_pack(tmp_path: Path) -> None:
    """A pack quoting the report it was signed against passes; once edited, policies check
    warns that it no longer says what the signed report said."""
    first = load_policy_set([pack(tmp_path, EVIDENCE)])
    fingerprint = build_report(first).fingerprint
    signed_header = HEADER + ('signed_off_by = "A. Example, DPO"\nsigned_off_on = 2026-09-01\n'
                              f'signed_off_report_sha256 = "{fingerprint}"\n')
    signed = load_policy_set([pack(tmp_path, EVIDENCE, signed_header)])
    assert signed.packs[0].signed_off_report_sha256 == fingerprint
    assert evidence_warnings(signed) == []
    edited = load_policy_set([pack(tmp_path, EVIDENCE.replace("six", "five"), signed_header)])
    (warning,) = evidence_warnings(edited)
    assert "pack.signed_off_report_sha256: the pack no longer says what" in warning
    unquoted = load_policy_set([pack(tmp_path, EVIDENCE, HEADER + (
        'signed_off_by = "A. Example, DPO"\nsigned_off_on = 2026-09-01\n'))])
    (warning,) = evidence_warnings(unquoted)
    assert "signed_off_report_sha256: missing" in warning


def test_check_warns_about_missing_evidence_only_where_signoff_is_needed(tmp_path: Path) -> None:
    """A pack needing sign-off is warned about each rule lacking evidence (file, rule, field);
    a pack that does not need sign-off is not."""
    needs = load_policy_set([pack(tmp_path)])
    assert sorted(w.split(": ")[1] for w in evidence_warnings(needs)) == [
        "rule 'ev.referral'.basis", "rule 'ev.referral'.source_quote",
        "rule 'ev.referral'.source_url"]
    relaxed = load_policy_set([pack(tmp_path, header=HEADER.replace("true", "false"))])
    assert evidence_warnings(relaxed) == []
