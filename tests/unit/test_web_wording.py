"""The record page's plain English, the dashboard chart, and the [web] settings: pure code."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from retentiond.config import Config, ConfigError
from retentiond.web.chart import describe, render_svg
from retentiond.web.exports import pseudonym, to_csv
from retentiond.web.settings import load_web_settings
from retentiond.web.wording import basis, headline, ordinal
from retentiond.wording import long_date


def _doc(**over: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "due_on": "2029-03-01", "is_due": False, "rule": "isa.education.pupil_record",
        "citation": "ISA, retention: education data until the 25th birthday", "needs_attention": None,
        "rules": [{"rule": "isa.education.pupil_record", "due_on": "2029-03-01",
                   "trigger": "date_of_birth", "period": "25y", "trigger_value": "2004-02-29",
                   "status": "applies", "reason": "25 years from date_of_birth"}],
    }
    doc.update(over)
    return doc


def test_headline_for_a_leap_day_birthday() -> None:
    """The issue's example sentence, word for word."""
    assert headline(_doc()) == (
        "Due on 1 March 2029: 25th birthday of a subject born 29 February 2004, under rule "
        "isa.education.pupil_record citing ISA, retention: education data until the 25th birthday.")


def test_headline_past_and_never() -> None:
    """A date already passed says 'Was due'; a record never due says why."""
    assert headline(_doc(is_due=True)).startswith("Was due on 1 March 2029")
    assert headline(_doc(due_on=None, needs_attention="no closed_on")) == \
        "Never due as things stand: no closed_on."


@pytest.mark.parametrize(("trigger", "period", "value", "expected"), [
    ("date_of_birth", "75y", "1950-01-02", "75th anniversary of the birth of a subject born 2 January 1950"),
    ("closed_on", "40y", "2001-07-31", "40 years after the case closed on 31 July 2001"),
    ("opened_on", "6y", "2020-01-10",
     "6 years after the record was opened (or the report made) on 10 January 2020"),
    ("date_of_death", "15y", "2010-05-01", "15 years after the subject's death on 1 May 2010"),
    ("date_of_birth", "1y6m", "2010-05-01", "1 year 6 months after date of birth 1 May 2010"),
])
def test_basis_in_words(trigger: str, period: str, value: str, expected: str) -> None:
    """Each trigger reads as a person would say it."""
    assert basis(trigger, period, value) == expected


@pytest.mark.parametrize(("n", "word"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (11, "11th"),
                                         (12, "12th"), (13, "13th"), (21, "21st"), (25, "25th")])
def test_ordinals(n: int, word: str) -> None:
    """English ordinals, including the teens."""
    assert ordinal(n) == word


def test_long_date() -> None:
    """GOV.UK date style: no leading zero, the month in words."""
    assert long_date(dt.date(2027, 3, 5)) == "5 March 2027" and long_date(None) == ""


def test_chart_is_an_svg_with_its_own_description() -> None:
    """The chart has a title and a description that states the busiest month; text is escaped."""
    data = {"2026-11": {"a.b": 3}, "2026-12": {"a.b": 1, "c.<d>": 5}}
    svg = render_svg(data)
    assert svg.startswith("<svg") and 'role="img"' in svg and "c.&lt;d&gt;" in svg
    assert "busiest month is Dec 2026 with 6" in describe(data)
    assert describe({"2026-11": {}}) == "No records fall due from Nov 2026 to Nov 2026."


def test_csv_neutralises_formulas_and_pseudonyms_are_keyed() -> None:
    """A cell starting with = is not run as a formula; pseudonyms depend on the key."""
    assert "'=HYPERLINK(1)" in to_csv(["a"], [{"a": "=HYPERLINK(1)"}])
    assert pseudonym(b"k1", "R-1") == pseudonym(b"k1", "R-1") != pseudonym(b"k2", "R-1")


def _cfg(tmp_path: Path, web: dict[str, object]) -> Config:
    return Config(source=str(tmp_path / "retentiond.toml"), raw={"web": web})


@pytest.mark.parametrize(("web", "message"), [
    ({"listen": "8080"}, "[web].listen: must be HOST:PORT"),
    ({"cookie_secure": "yes"}, "[web].cookie_secure: must be a bool"),
    ({"session_idle_minutes": 0}, "[web].session_idle_minutes: must be more than 0"),
    ({"session_idle_minutes": 900, "session_absolute_hours": 12}, "longer than"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"oidc": {"issuer": "https://login.example/t/v2.0", "client_id": "x"}},
     "[web.oidc].client_secret_file: is required"),
    ({"public_url": "https://r.example",
      "oidc": {"issuer": "https://login.example/t/v2.0", "client_id": "x",
               "client_secret_file": "missing"}}, "missing: No such file"),
])
def test_bad_web_settings_name_file_and_key(tmp_path: Path, web: dict[str, object], message: str) -> None:
    """A wrong [web] value is refused with the file and the key named."""
    with pytest.raises(ConfigError) as caught:
        load_web_settings(_cfg(tmp_path, web))
    assert str(tmp_path / "retentiond.toml") in str(caught.value) and message in str(caught.value)


def test_default_web_settings_are_safe(tmp_path: Path) -> None:
    """Without a [web] section: loopback, secure cookies, 30 minutes idle, 12 hours at most."""
    s = load_web_settings(_cfg(tmp_path, {}))
    assert (s.host, s.port, s.cookie_secure, s.session_idle_minutes, s.session_absolute_hours) == \
        ("127.0.0.1", 8080, True, 30, 12)
    assert s.session_cookie == "__Host-retentiond"


def test_audit_events_read_as_words() -> None:
    """Known events have their own words; any other is spelt out, with 'Case' for 'Disposal'."""
    from retentiond.web.wording import event_label

    assert event_label("DisposalApproved") == "Case approved"
    assert event_label("DisposalReturnedToReview") == "Failed case sent back to review"
    assert event_label("HoldPlaced") == "Hold placed"
    assert event_label("DisposalSomethingNew") == "Case something new"
    assert event_label("UserSignedIn") == "Signed in"


def test_lifecycle_messages_say_case_and_states_in_words() -> None:
    """'disposal 17 is pending_review' reads 'case 17 is pending review' on a page."""
    from retentiond.web.wording import case_words

    assert case_words("disposal 17 is pending_review: only a case pending review can be "
                      "approved") == ("case 17 is pending review: only a case pending review "
                                      "can be approved")
    assert case_words("no disposal 4, 5") == "no case 4, 5"
    assert case_words("the disposal run is late") == "the disposal run is late"


def test_plurals_and_hold_scopes() -> None:
    """No '(s)': one case, two cases; a hold's scope in words, categories by their label."""
    from retentiond.web.wording import plural, scope_words

    assert (plural(1, "case"), plural(2, "case"), plural(1_500, "record")) == \
        ("1 case", "2 cases", "1,500 records")
    labels = {"education.pupil_record": "Pupil educational record"}.get
    assert scope_words("category:education.pupil_record", labels) == \
        "Category: Pupil educational record"
    assert scope_words("record:R-1") == "Record R-1"
    assert scope_words("filter:School A") == "Saved filter \u201cSchool A\u201d"
