"""Saved-filter criteria: parsing, validation (the error names the field), what a hold keeps,
and the plain-English description shown on the hold page."""

from __future__ import annotations

import datetime as dt

import pytest

from retentiond.lifecycle.context import LifecycleError
from retentiond.lifecycle.filters import Criteria, check_name, parse_criteria
from retentiond.lifecycle.holds import QUEUE_LOCK_KEY, parse_scope


def test_parse_keeps_what_is_set_and_round_trips() -> None:
    c = parse_criteria({"controller": " DEMO-LA-01 ", "category": "education.pupil_record",
                        "due_to": "2030-03-01", "rule": "", "state": "pending_review"})
    assert c == Criteria(controller="DEMO-LA-01", category="education.pupil_record",
                         due_to=dt.date(2030, 3, 1), state="pending_review")
    assert c.as_json() == {"controller": "DEMO-LA-01", "category": "education.pupil_record",
                           "due_to": "2030-03-01", "state": "pending_review"}
    assert parse_criteria(c.as_json()) == c


def test_a_hold_keeps_the_record_criteria_not_the_state() -> None:
    c = parse_criteria({"action": "delete", "state": "pending_review"})
    assert c.for_hold().as_json() == {"action": "delete"}
    assert c.for_hold().describes_records
    assert not parse_criteria({"state": "held"}).for_hold().describes_records


@pytest.mark.parametrize(("data", "message"), [
    ({"due_to": "2030-02-30"}, r"^due_to: '2030-02-30' is not a date \(YYYY-MM-DD\)$"),
    ({"due_from": "1 March 2030"}, r"^due_from: '1 March 2030' is not a date"),
    ({"action": "shred"}, r"^action: 'shred' is not one of anonymise, delete, return, review, "
                          r"transfer$"),
    ({"state": "gone"}, r"^state: 'gone' is not one of pending_review, "),
    ({"due_from": "2030-03-02", "due_to": "2030-03-01"}, r"^due_to: must not be before due_from$"),
    ({"colour": "red"}, r"^colour: not a filter criterion \(one of controller, category, rule, "),
    ({"controller": 7}, r"^controller: must be text, not int$"),
    ({"category": "x" * 201}, r"^category: longer than 200 characters$"),
])
def test_bad_criteria_name_the_field(data: dict[str, object], message: str) -> None:
    with pytest.raises(LifecycleError, match=message):
        parse_criteria(data)


def test_criteria_must_be_an_object() -> None:
    with pytest.raises(LifecycleError, match=r"^criteria: must be an object"):
        parse_criteria(["controller"])  # type: ignore[arg-type]


@pytest.mark.parametrize(("data", "text"), [
    ({"controller": "DEMO-LA-01", "category": "education", "due_to": "2030-03-01"},
     "records of controller DEMO-LA-01 in category education due on or before 1 March 2030"),
    ({"due_from": "2027-01-09"}, "records due on or after 9 January 2027"),
    ({"rule": "LA-REF-1", "action": "delete", "due_from": "2027-01-01", "due_to": "2027-12-31"},
     "records under rule LA-REF-1 to be disposed of by delete due from 1 January 2027 to "
     "31 December 2027 inclusive"),
    ({"category": "safeguarding.referral", "state": "pending_review"},
     "records in category safeguarding.referral (in the queue: cases pending review)"),
])
def test_plain_english(data: dict[str, str], text: str) -> None:
    assert parse_criteria(data).describe() == text


@pytest.mark.parametrize(("name", "message"), [
    ("", "^name: enter a name"), ("   ", "^name: enter a name"), ("42", "^name: must not be only digits"),
    ("x" * 101, "^name: longer than 100"), ("a\tb", "^name: must not contain control"),
])
def test_bad_names(name: str, message: str) -> None:
    with pytest.raises(LifecycleError, match=message):
        check_name(name)


def test_filter_scope_parses_and_keeps_colons_in_the_name() -> None:
    assert parse_scope("filter:LA referrals: 2027") == ("filter", "LA referrals: 2027")
    with pytest.raises(LifecycleError, match="filter:NAME"):
        parse_scope("saved:x")


def test_hold_placement_takes_evaluations_queue_lock() -> None:
    """Placing a hold and queueing serialise on the same PostgreSQL advisory lock."""
    from retentiond.lifecycle.evaluate import QUEUE_LOCK_KEY as evaluate_key

    assert evaluate_key == QUEUE_LOCK_KEY
