"""The wider English pack (``policies/england-wider.toml``), rule by rule."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from policy_builders import D, write_pack

from retentiond.policy import ACTIONS, Facts, PolicySet, decide, load_policy_set

REPO = Path(__file__).resolve().parents[2]
WIDER_PACK = REPO / "policies" / "england-wider.toml"
DEFAULT_PACK = REPO / "policies" / "isa-default.toml"


@pytest.fixture(scope="module")
def wider() -> PolicySet:
    """The wider pack alone, as shipped (not signed off)."""
    return load_policy_set([WIDER_PACK])


@pytest.fixture(scope="module")
def both() -> PolicySet:
    """The seed pack and the wider pack loaded together."""
    return load_policy_set([DEFAULT_PACK, WIDER_PACK])


SEN = "wider.education.sen_record"
ATTENDANCE = "wider.education.attendance_register"
ADMISSION = "wider.education.admission_register"
LADO_PENSION = "wider.safeguarding.lado_allegation.pension_age"
LADO_TEN = "wider.safeguarding.lado_allegation.ten_years"
ADOPTION = "wider.adoption.case_record"
HEALTH = "wider.health.child_record"
HOME = "wider.childrens_home.case_record"
CARER = "wider.fostering.carer_record"
CONNECTED = "wider.fostering.connected_person_record"
NOT_APPROVED = "wider.fostering.application_not_approved"
HEALTH_DEATH = "wider.health.child_record.after_death"
CP_FILE = "wider.education.child_protection_file"
LADO_RECORD = "wider.safeguarding.lado_record"
CARE_LEAVER = "wider.looked_after.care_leaver_record"
NO_ORDER = "wider.adoption.case_record_no_order"
YOUTH = "wider.youth_justice.case_record"

#: rule id -> (category, action, approvals_required)
RULES = {
    SEN: ("education.sen_record", "review", 1),
    ATTENDANCE: ("education.attendance_register", "delete", 1),
    ADMISSION: ("education.admission_register", "delete", 1),
    LADO_PENSION: ("safeguarding.lado_allegation", "review", 2),
    LADO_TEN: ("safeguarding.lado_allegation", "review", 2),
    ADOPTION: ("adoption.case_record", "review", 2),
    HEALTH: ("health.child_record", "review", 1),
    HEALTH_DEATH: ("health.child_record", "review", 1),
    HOME: ("childrens_home.case_record", "review", 2),
    CARER: ("fostering.carer_record", "review", 1),
    CONNECTED: ("fostering.connected_person_record", "review", 1),
    NOT_APPROVED: ("fostering.application_not_approved", "delete", 1),
    CP_FILE: ("education.child_protection_file", "review", 2),
    LADO_RECORD: ("safeguarding.lado_record", "review", 2),
    CARE_LEAVER: ("looked_after.care_leaver_record", "review", 2),
    NO_ORDER: ("adoption.case_record_no_order", "review", 2),
    YOUTH: ("youth_justice.case_record", "review", 1),
}

# (rule id that decides or blocks, facts kwargs, due_on, alternative used or attention text)
CASES = [
    # SEN file / EHC plan: date of birth + 31 years.
    pytest.param(SEN, {"date_of_birth": D(2010, 5, 20)}, D(2041, 5, 20), 0, id="sen-dob-31y"),
    pytest.param(SEN, {"date_of_birth": D(2004, 2, 29)}, D(2035, 3, 1), 0,
                 id="sen-born-29-feb"),
    pytest.param(SEN, {"opened_on": D(2015, 1, 1)}, None, "the record has no date_of_birth",
                 id="sen-no-dob"),
    # Registers: 6 years from the (last) entry.
    pytest.param(ATTENDANCE, {"event_on": D(2024, 7, 19)}, D(2030, 7, 19), 0,
                 id="attendance-6y-from-entry"),
    pytest.param(ATTENDANCE, {"event_on": D(2024, 2, 29)}, D(2030, 3, 1), 0,
                 id="attendance-entry-29-feb"),
    pytest.param(ATTENDANCE, {"opened_on": D(2024, 9, 4)}, None, "the record has no event_on",
                 id="attendance-no-entry-date"),
    pytest.param(ADMISSION, {"event_on": D(2025, 9, 3)}, D(2031, 9, 3), 0,
                 id="admission-6y-from-entry"),
    pytest.param(ADMISSION, {}, None, "the record has no event_on", id="admission-no-entry-date"),
    # LADO: pension age (68) or 10 years from the allegation, whichever is later.
    pytest.param(LADO_PENSION, {"date_of_birth": D(1980, 3, 15), "opened_on": D(2024, 5, 1)},
                 D(2048, 3, 15), 0, id="lado-pension-age-later"),
    pytest.param(LADO_TEN, {"date_of_birth": D(1960, 1, 10), "opened_on": D(2024, 5, 1)},
                 D(2034, 5, 1), 0, id="lado-ten-years-later"),
    pytest.param(LADO_PENSION, {"date_of_birth": D(1966, 5, 1), "opened_on": D(2024, 5, 1)},
                 D(2034, 5, 1), 0, id="lado-same-day-lowest-id"),
    pytest.param(LADO_PENSION, {"opened_on": D(2024, 5, 1)}, None,
                 "the record has no date_of_birth", id="lado-no-dob-never-due"),
    pytest.param(LADO_TEN, {"date_of_birth": D(1980, 3, 15)}, None,
                 "the record has no opened_on", id="lado-no-allegation-date-never-due"),
    # Adoption: 100 years from the adoption order.
    pytest.param(ADOPTION, {"event_on": D(2010, 6, 30)}, D(2110, 6, 30), 0,
                 id="adoption-100y-from-order"),
    pytest.param(ADOPTION, {"event_on": D(2008, 2, 29)}, D(2108, 2, 29), 0,
                 id="adoption-order-29-feb-leap-target"),
    pytest.param(ADOPTION, {"event_on": D(2000, 2, 29)}, D(2100, 3, 1), 0,
                 id="adoption-order-29-feb-2100-not-leap"),
    pytest.param(ADOPTION, {"date_of_birth": D(2008, 1, 1)}, None,
                 "the record has no event_on", id="adoption-no-order-date"),
    # Children's health record: the birthday rule, and 8 years after death as a floor.
    pytest.param(HEALTH, {"date_of_birth": D(2010, 3, 1), "closed_on": D(2020, 6, 1)},
                 D(2035, 3, 1), 3, id="health-closed-aged-10-25th"),
    pytest.param(HEALTH, {"date_of_birth": D(2005, 1, 10), "closed_on": D(2022, 6, 1)},
                 D(2031, 1, 10), 2, id="health-closed-aged-17-26th"),
    pytest.param(HEALTH, {"date_of_birth": D(2005, 1, 10), "closed_on": D(2022, 1, 10)},
                 D(2031, 1, 10), 2, id="health-closed-on-17th-birthday"),
    pytest.param(HEALTH, {"date_of_birth": D(2005, 1, 10), "closed_on": D(2022, 1, 9)},
                 D(2030, 1, 10), 3, id="health-closed-day-before-17th"),
    pytest.param(HEALTH, {"date_of_birth": D(2005, 1, 10), "closed_on": D(2024, 1, 1)},
                 D(2031, 1, 10), 2, id="health-closed-aged-18-26th"),
    pytest.param(HEALTH, {"date_of_birth": D(2004, 2, 29), "closed_on": D(2021, 2, 28)},
                 D(2029, 3, 1), 3, id="health-born-29-feb-closed-aged-16"),
    pytest.param(HEALTH, {"date_of_birth": D(2004, 2, 29), "closed_on": D(2021, 3, 1)},
                 D(2030, 3, 1), 2, id="health-born-29-feb-closed-on-17th"),
    # Died young: the 25th birthday, long after "8 years after death" (the old pack's date,
    # 1 Jul 2023, was 12 years early under the current Code).
    pytest.param(HEALTH, {"date_of_birth": D(2010, 3, 1), "date_of_death": D(2015, 7, 1)},
                 D(2035, 3, 1), 0, id="health-died-aged-5-25th-birthday-wins"),
    pytest.param(HEALTH, {"date_of_birth": D(2005, 1, 10), "date_of_death": D(2022, 1, 9)},
                 D(2030, 1, 10), 0, id="health-died-day-before-17th-25th"),
    pytest.param(HEALTH, {"date_of_birth": D(2005, 1, 10), "date_of_death": D(2022, 1, 10)},
                 D(2031, 1, 10), 1, id="health-died-on-17th-birthday-26th"),
    pytest.param(HEALTH, {"date_of_birth": D(2004, 2, 29), "date_of_death": D(2021, 2, 28)},
                 D(2029, 3, 1), 0, id="health-born-29-feb-died-aged-16"),
    pytest.param(HEALTH_DEATH, {"date_of_birth": D(2005, 1, 10), "date_of_death": D(2025, 1, 10),
                                "closed_on": D(2024, 6, 1)},
                 D(2033, 1, 10), 0, id="health-died-aged-20-8y-after-death-wins"),
    pytest.param(HEALTH_DEATH, {"date_of_birth": D(1995, 1, 1), "date_of_death": D(2025, 1, 1)},
                 D(2033, 1, 1), 0, id="health-died-aged-30-after-death"),
    pytest.param(HEALTH, {"date_of_death": D(2015, 7, 1), "closed_on": D(2015, 7, 1)}, None,
                 "cannot tell whether alternative 1 applies", id="health-died-no-dob"),
    pytest.param(HEALTH, {"date_of_birth": D(2010, 3, 1)}, None,
                 "cannot tell whether alternative 3 applies", id="health-in-treatment"),
    pytest.param(HEALTH, {"closed_on": D(2020, 6, 1)}, None,
                 "the record has no date_of_birth", id="health-closed-no-dob"),
    # Children's home case record.
    pytest.param(HOME, {"date_of_birth": D(2008, 8, 8)}, D(2083, 8, 8), 1,
                 id="home-alive-75y"),
    pytest.param(HOME, {"date_of_birth": D(2008, 8, 8), "date_of_death": D(2020, 9, 9)},
                 D(2035, 9, 9), 0, id="home-died-aged-12-15y"),
    pytest.param(HOME, {"date_of_birth": D(2008, 8, 8), "date_of_death": D(2026, 8, 8)},
                 D(2083, 8, 8), 1, id="home-died-on-18th-birthday-75y"),
    pytest.param(HOME, {"date_of_birth": D(2008, 8, 8), "date_of_death": D(2026, 8, 7)},
                 D(2041, 8, 7), 0, id="home-died-day-before-18th"),
    pytest.param(HOME, {"opened_on": D(2020, 1, 1)}, None, "the record has no date_of_birth",
                 id="home-no-dob"),
    pytest.param(HOME, {"date_of_death": D(2020, 1, 1)}, None,
                 "cannot tell whether alternative 1 applies", id="home-died-no-dob"),
    # Fostering.
    pytest.param(CARER, {"closed_on": D(2023, 3, 31)}, D(2033, 3, 31), 0,
                 id="carer-10y-from-end-of-approval"),
    pytest.param(CARER, {"opened_on": D(2015, 1, 1)}, None, "the record has no closed_on",
                 id="carer-still-approved"),
    pytest.param(CONNECTED, {"closed_on": D(2024, 2, 29)}, D(2034, 3, 1), 0,
                 id="connected-placement-ended-29-feb"),
    pytest.param(CONNECTED, {}, None, "the record has no closed_on", id="connected-ongoing"),
    pytest.param(NOT_APPROVED, {"closed_on": D(2025, 1, 31)}, D(2028, 1, 31), 0,
                 id="not-approved-3y"),
    pytest.param(NOT_APPROVED, {}, None, "the record has no closed_on",
                 id="not-approved-no-date"),
    # School's child protection file: date of birth + 25 years, then review.
    pytest.param(CP_FILE, {"date_of_birth": D(2012, 9, 3)}, D(2037, 9, 3), 0,
                 id="cp-file-dob-25y"),
    pytest.param(CP_FILE, {"date_of_birth": D(2012, 2, 29)}, D(2037, 3, 1), 0,
                 id="cp-file-born-29-feb"),
    pytest.param(CP_FILE, {"opened_on": D(2020, 1, 6)}, None, "the record has no date_of_birth",
                 id="cp-file-no-dob"),
    # The LADO's own record: unfounded or malicious 10 years from closure; otherwise 100 years
    # from the adult's birth.
    pytest.param(LADO_RECORD, {"date_of_birth": D(1980, 3, 15), "closed_on": D(2024, 5, 1),
                               "flags": frozenset({"lado_unfounded"})},
                 D(2034, 5, 1), 0, id="lado-record-unfounded-10y"),
    pytest.param(LADO_RECORD, {"date_of_birth": D(1980, 3, 15), "closed_on": D(2024, 5, 1),
                               "flags": frozenset({"lado_malicious"})},
                 D(2034, 5, 1), 1, id="lado-record-malicious-10y"),
    pytest.param(LADO_RECORD, {"date_of_birth": D(1980, 3, 15), "closed_on": D(2024, 5, 1),
                               "flags": frozenset({"lado_substantiated"})},
                 D(2080, 3, 15), 2, id="lado-record-substantiated-100y"),
    pytest.param(LADO_RECORD, {"date_of_birth": D(1980, 3, 15), "closed_on": D(2024, 5, 1),
                               "flags": frozenset({"lado_unsubstantiated"})},
                 D(2080, 3, 15), 2, id="lado-record-unsubstantiated-100y"),
    pytest.param(LADO_RECORD, {"date_of_birth": D(1980, 3, 15), "closed_on": D(2024, 5, 1)},
                 D(2080, 3, 15), 2, id="lado-record-no-outcome-100y"),
    pytest.param(LADO_RECORD, {"date_of_birth": D(1980, 3, 15), "closed_on": D(2024, 5, 1),
                               "flags": frozenset({"lado_unfounded", "lado_substantiated"})},
                 D(2080, 3, 15), 2, id="lado-record-conflicting-outcomes-100y"),
    pytest.param(LADO_RECORD, {"date_of_birth": D(1980, 3, 15), "closed_on": D(2024, 5, 1),
                               "flags": frozenset({"lado_unfounded", "lado_malicious"})},
                 D(2080, 3, 15), 2, id="lado-record-unfounded-and-malicious-100y"),
    pytest.param(LADO_RECORD, {"date_of_birth": D(2000, 2, 29)}, D(2100, 3, 1), 2,
                 id="lado-record-born-29-feb-2100-not-leap"),
    pytest.param(LADO_RECORD, {"date_of_birth": D(1980, 3, 15),
                               "flags": frozenset({"lado_unfounded"})}, None,
                 "the record has no closed_on", id="lado-record-unfounded-still-open"),
    pytest.param(LADO_RECORD, {"closed_on": D(2024, 5, 1)}, None,
                 "the record has no date_of_birth", id="lado-record-no-dob"),
    # Care leavers: as looked-after records.
    pytest.param(CARE_LEAVER, {"date_of_birth": D(2006, 4, 10)}, D(2081, 4, 10), 1,
                 id="care-leaver-alive-75y"),
    pytest.param(CARE_LEAVER, {"date_of_birth": D(2006, 4, 10), "date_of_death": D(2024, 4, 9)},
                 D(2039, 4, 9), 0, id="care-leaver-died-day-before-18th-15y"),
    pytest.param(CARE_LEAVER, {"date_of_birth": D(2006, 4, 10),
                               "date_of_death": D(2024, 4, 10)},
                 D(2081, 4, 10), 1, id="care-leaver-died-on-18th-birthday-75y"),
    pytest.param(CARE_LEAVER, {"date_of_birth": D(2004, 2, 29)}, D(2079, 3, 1), 1,
                 id="care-leaver-born-29-feb"),
    pytest.param(CARE_LEAVER, {"date_of_death": D(2024, 1, 1)}, None,
                 "cannot tell whether alternative 1 applies", id="care-leaver-died-no-dob"),
    pytest.param(CARE_LEAVER, {"opened_on": D(2022, 1, 1)}, None,
                 "the record has no date_of_birth", id="care-leaver-no-dob"),
    # Adoption case record where no order was made: as a looked-after record.
    pytest.param(NO_ORDER, {"date_of_birth": D(2015, 6, 30)}, D(2090, 6, 30), 1,
                 id="no-order-75y"),
    pytest.param(NO_ORDER, {"date_of_birth": D(2015, 6, 30), "date_of_death": D(2018, 2, 1)},
                 D(2033, 2, 1), 0, id="no-order-died-aged-2-15y"),
    pytest.param(NO_ORDER, {"date_of_birth": D(2016, 2, 29)}, D(2091, 3, 1), 1,
                 id="no-order-born-29-feb"),
    pytest.param(NO_ORDER, {"event_on": D(2020, 1, 1)}, None, "the record has no date_of_birth",
                 id="no-order-no-dob"),
    # Youth justice: 6 years from closure, then review (a local reading).
    pytest.param(YOUTH, {"closed_on": D(2024, 3, 31)}, D(2030, 3, 31), 0, id="youth-6y"),
    pytest.param(YOUTH, {"closed_on": D(2024, 2, 29)}, D(2030, 3, 1), 0,
                 id="youth-closed-29-feb"),
    pytest.param(YOUTH, {"opened_on": D(2024, 3, 31)}, None, "the record has no closed_on",
                 id="youth-still-open"),
]


@pytest.mark.parametrize(("rule_id", "given", "due", "detail"), CASES)
def test_wider_pack_rule(
    wider: PolicySet, both: PolicySet, rule_id: str, given: dict[str, Any],
    due: dt.date | None, detail: int | str,
) -> None:
    """Each rule of the wider pack gives the date its citation states, alone or with the seed."""
    category, action, approvals = RULES[rule_id]
    decision = decide(wider, Facts(category=category, **given))
    assert decision.due_on == due
    assert decision.approvals_required == approvals
    assert decision.auto_approve is False
    if due is None:
        assert isinstance(detail, str)
        assert decision.action is None
        assert decision.needs_attention is not None
        assert f"{rule_id}: " in decision.needs_attention
        assert detail in decision.needs_attention
    else:
        assert decision.rule_id == rule_id
        assert decision.action == action
        assert decision.needs_attention is None
        chosen = next(o for o in decision.outcomes if o.rule_id == rule_id)
        assert chosen.alternative == detail
    combined = decide(both, Facts(category=category, **given))
    assert (combined.due_on, combined.rule_id, combined.needs_attention) == (
        decision.due_on, decision.rule_id, decision.needs_attention,
    )


def test_cases_cover_every_rule(wider: PolicySet) -> None:
    """Every rule of the wider pack has table cases here (a new rule needs its own)."""
    assert {case.values[0] for case in CASES} == {r.id for r in wider.rules} == set(RULES)


def test_rules_match_expected_categories_and_actions(wider: PolicySet) -> None:
    """Each rule has the category, action and approvals the table above expects."""
    for r in wider.rules:
        assert (r.category, r.action, r.approvals_required) == RULES[r.id]


def test_every_rule_is_cited_and_needs_a_person(wider: PolicySet) -> None:
    """Every rule names its source, uses a known action and never approves automatically."""
    for r in wider.rules:
        assert len(r.citation) > 40, r.id
        assert r.action in ACTIONS
        assert r.auto_approve is False
        assert r.id.startswith("wider.")


def test_pack_requires_local_signoff(wider: PolicySet) -> None:
    """The pack is marked as needing local sign-off and is shipped unsigned."""
    (pack,) = wider.packs
    assert pack.name == "england-wider"
    assert pack.requires_local_signoff is True
    assert pack.signed_off_by is None
    assert pack.signed_off_on is None
    assert "signed off locally before use" in " ".join(pack.description.split())
    assert "signed_off_by" in pack.description
    assert "signed_off_on" in pack.description


def test_signing_off_with_the_template_lines(tmp_path: Path) -> None:
    """Uncommenting the sign-off lines in [pack] gives a signed pack (and a new version)."""
    text = WIDER_PACK.read_text(encoding="utf-8")
    signed_text = text.replace(
        '# signed_off_by = "Name, role"', 'signed_off_by = "A. Example, IG lead"'
    ).replace("# signed_off_on = 2026-09-01", "signed_off_on = 2026-09-01")
    assert signed_text != text
    signed = load_policy_set([write_pack(tmp_path, "england-wider.toml", signed_text)])
    (pack,) = signed.packs
    assert pack.signed_off_by == "A. Example, IG lead"
    assert pack.signed_off_on == D(2026, 9, 1)
    assert signed.version != load_policy_set([WIDER_PACK]).version


def test_loads_beside_the_seed_pack(wider: PolicySet, both: PolicySet) -> None:
    """The two packs load together: no rule id or category clashes, one combined version."""
    seed = load_policy_set([DEFAULT_PACK])
    assert len(both.rules) == len(seed.rules) + len(wider.rules)
    assert not seed.categories & wider.categories
    assert both.version not in (seed.version, wider.version)
    assert wider.categories == {
        "education.sen_record", "education.attendance_register",
        "education.admission_register", "safeguarding.lado_allegation",
        "adoption.case_record", "health.child_record", "childrens_home.case_record",
        "fostering.carer_record", "fostering.connected_person_record",
        "fostering.application_not_approved", "education.child_protection_file",
        "safeguarding.lado_record", "looked_after.care_leaver_record",
        "adoption.case_record_no_order", "youth_justice.case_record",
    }
