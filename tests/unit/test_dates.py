"""Calendar arithmetic of retention periods (DESIGN.md section 3, rules 1 and 2)."""

from __future__ import annotations

import datetime as dt

import pytest
from policy_builders import D, alt

from retentiond.policy import Period
from retentiond.policy.dates import add_period, age_on, round_up
from retentiond.policy.engine import due_from
from retentiond.policy.model import ROUNDINGS

# (anchor, period, missing_day, expected)
ADD_PERIOD_CASES = [
    pytest.param(D(2001, 9, 14), "25y", "next_day", D(2026, 9, 14), id="years-plain"),
    pytest.param(D(2019, 3, 10), "6y", "next_day", D(2025, 3, 10), id="six-years"),
    pytest.param(D(2021, 7, 1), "40y", "next_day", D(2061, 7, 1), id="forty-years"),
    pytest.param(D(2024, 1, 15), "3m", "next_day", D(2024, 4, 15), id="months-plain"),
    pytest.param(D(2024, 11, 15), "3m", "next_day", D(2025, 2, 15), id="months-cross-year"),
    pytest.param(D(2023, 3, 15), "1y6m", "next_day", D(2024, 9, 15), id="years-and-months"),
    pytest.param(D(2024, 2, 15), "30d", "next_day", D(2024, 3, 16), id="days-through-leap-feb"),
    pytest.param(D(2025, 2, 15), "30d", "next_day", D(2025, 3, 17), id="days-through-common-feb"),
    pytest.param(D(2025, 12, 20), "15d", "next_day", D(2026, 1, 4), id="days-cross-year"),
    pytest.param(D(2025, 6, 1), "0d", "next_day", D(2025, 6, 1), id="zero-period"),
    pytest.param(D(2023, 2, 28), "1y", "next_day", D(2024, 2, 28), id="28-feb-into-leap-year"),
    # 29 February anniversaries fall on 1 March in common years (rule 2) ...
    pytest.param(D(2004, 2, 29), "25y", "next_day", D(2029, 3, 1), id="29-feb-25th-birthday"),
    pytest.param(D(2024, 2, 29), "1y", "next_day", D(2025, 3, 1), id="29-feb-plus-1y"),
    pytest.param(D(2004, 2, 29), "4y", "next_day", D(2008, 2, 29), id="29-feb-into-leap-year"),
    pytest.param(D(2004, 2, 29), "96y", "next_day", D(2100, 3, 1), id="29-feb-into-2100"),
    pytest.param(D(2004, 2, 29), "100y", "next_day", D(2104, 2, 29), id="29-feb-into-2104"),
    pytest.param(D(2004, 2, 29), "12m", "next_day", D(2005, 3, 1), id="29-feb-plus-12m"),
    # ... unless the rule says missing_day = "last_day".
    pytest.param(D(2004, 2, 29), "25y", "last_day", D(2029, 2, 28), id="29-feb-last-day"),
    pytest.param(D(2004, 2, 29), "4y", "last_day", D(2008, 2, 29), id="29-feb-last-day-leap"),
    # Month-end clipping: the same choice for days the target month lacks.
    pytest.param(D(2025, 1, 31), "1m", "next_day", D(2025, 3, 1), id="31-jan-plus-1m"),
    pytest.param(D(2025, 1, 31), "1m", "last_day", D(2025, 2, 28), id="31-jan-plus-1m-last"),
    pytest.param(D(2024, 1, 31), "1m", "next_day", D(2024, 3, 1), id="31-jan-plus-1m-leap"),
    pytest.param(D(2024, 1, 31), "1m", "last_day", D(2024, 2, 29), id="31-jan-1m-leap-last"),
    pytest.param(D(2025, 1, 30), "1m", "next_day", D(2025, 3, 1), id="30-jan-plus-1m"),
    pytest.param(D(2025, 3, 31), "1m", "next_day", D(2025, 5, 1), id="31-mar-plus-1m"),
    pytest.param(D(2025, 3, 31), "1m", "last_day", D(2025, 4, 30), id="31-mar-plus-1m-last"),
    pytest.param(D(2024, 8, 31), "6m", "next_day", D(2025, 3, 1), id="31-aug-plus-6m"),
    pytest.param(D(2023, 8, 31), "1y6m", "next_day", D(2025, 3, 1), id="31-aug-plus-1y6m"),
    pytest.param(D(2025, 1, 31), "2m", "next_day", D(2025, 3, 31), id="31-jan-plus-2m"),
    # Years and months first, then days (as relativedelta does).
    pytest.param(D(2025, 1, 31), "1m2d", "next_day", D(2025, 3, 3), id="clipped-then-days"),
    pytest.param(D(2025, 1, 31), "1m2d", "last_day", D(2025, 3, 2), id="clipped-last-then-days"),
    pytest.param(D(2024, 2, 29), "1y1d", "next_day", D(2025, 3, 2), id="29-feb-1y1d"),
]


@pytest.mark.parametrize(("anchor", "period", "missing_day", "expected"), ADD_PERIOD_CASES)
def test_add_period(anchor: dt.date, period: str, missing_day: str, expected: dt.date) -> None:
    """A period is calendar years, months, then days; a missing day follows ``missing_day``."""
    assert add_period(anchor, Period.parse(period), missing_day=missing_day) == expected


def test_add_period_defaults_to_next_day() -> None:
    """Without ``missing_day`` a 29 February anniversary falls on 1 March, never a day early."""
    assert add_period(D(2004, 2, 29), Period(years=25)) == D(2029, 3, 1)


def test_add_period_refuses_unknown_missing_day() -> None:
    """An unknown ``missing_day`` is a programming error, not a silent default."""
    with pytest.raises(ValueError, match="missing_day"):
        add_period(D(2020, 1, 1), Period(years=1), missing_day="previous_day")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("25y", Period(years=25), id="years"),
        pytest.param("6m", Period(months=6), id="months"),
        pytest.param("30d", Period(days=30), id="days"),
        pytest.param("1y6m", Period(years=1, months=6), id="years-months"),
        pytest.param("1y2m3d", Period(years=1, months=2, days=3), id="all-three"),
        pytest.param(" 1y 6m ", Period(years=1, months=6), id="spaces-ignored"),
        pytest.param("0d", Period(), id="zero"),
    ],
)
def test_period_parse(text: str, expected: Period) -> None:
    """Periods are written as years, months and days in that order."""
    assert Period.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("", id="empty"),
        pytest.param("25", id="no-unit"),
        pytest.param("25 years", id="words"),
        pytest.param("6m1y", id="wrong-order"),
        pytest.param("25Y", id="upper-case"),
        pytest.param("-1y", id="negative"),
        pytest.param("1.5y", id="fraction"),
        pytest.param("1w", id="weeks"),
    ],
)
def test_period_parse_refuses(text: str) -> None:
    """Anything but ``NyNmNd`` is refused with a message showing the accepted forms."""
    with pytest.raises(ValueError, match="is not a period such as"):
        Period.parse(text)


@pytest.mark.parametrize(
    ("period", "text", "words"),
    [
        pytest.param(Period(years=25), "25y", "25 years", id="years"),
        pytest.param(Period(years=1, months=6), "1y6m", "1 year 6 months", id="singular"),
        pytest.param(Period(days=1), "1d", "1 day", id="one-day"),
        pytest.param(Period(), "0d", "0 days", id="zero"),
    ],
)
def test_period_text_and_words(period: Period, text: str, words: str) -> None:
    """A period prints in policy syntax and describes itself in words for explanations."""
    assert str(period) == text
    assert Period.parse(str(period)) == period
    assert period.describe() == words


# (day, rounding, expected)
ROUND_UP_CASES = [
    pytest.param(D(2025, 3, 10), "academic_year_end", D(2025, 8, 31), id="academic-before"),
    pytest.param(D(2025, 8, 31), "academic_year_end", D(2025, 8, 31), id="academic-on-end"),
    pytest.param(D(2025, 8, 30), "academic_year_end", D(2025, 8, 31), id="academic-day-before"),
    pytest.param(D(2025, 9, 1), "academic_year_end", D(2026, 8, 31), id="academic-day-after"),
    pytest.param(D(2025, 12, 31), "academic_year_end", D(2026, 8, 31), id="academic-new-year"),
    pytest.param(D(2024, 2, 29), "academic_year_end", D(2024, 8, 31), id="academic-29-feb"),
    pytest.param(D(2025, 1, 1), "financial_year_end", D(2025, 3, 31), id="financial-before"),
    pytest.param(D(2025, 3, 31), "financial_year_end", D(2025, 3, 31), id="financial-on-end"),
    pytest.param(D(2025, 4, 1), "financial_year_end", D(2026, 3, 31), id="financial-day-after"),
    pytest.param(D(2025, 12, 31), "financial_year_end", D(2026, 3, 31), id="financial-dec"),
    pytest.param(D(2025, 1, 1), "calendar_year_end", D(2025, 12, 31), id="calendar-first-day"),
    pytest.param(D(2025, 6, 15), "calendar_year_end", D(2025, 12, 31), id="calendar-mid"),
    pytest.param(D(2025, 12, 31), "calendar_year_end", D(2025, 12, 31), id="calendar-on-end"),
]


@pytest.mark.parametrize(("day", "rounding", "expected"), ROUND_UP_CASES)
def test_round_up(day: dt.date, rounding: str, expected: dt.date) -> None:
    """Rounding moves forward to the next 31 Aug / 31 Mar / 31 Dec, staying put if already on it."""
    assert round_up(day, rounding) == expected


def test_roundings_are_the_three_period_ends() -> None:
    """Exactly the academic (31 Aug), financial (31 Mar) and calendar (31 Dec) year ends exist."""
    assert ROUNDINGS == {
        "academic_year_end": (8, 31),
        "financial_year_end": (3, 31),
        "calendar_year_end": (12, 31),
    }


def test_round_up_refuses_unknown_rounding() -> None:
    """An unknown rounding raises (the loader refuses it before the engine sees it)."""
    with pytest.raises(KeyError):
        round_up(D(2025, 1, 1), "school_term_end")


# (date_of_birth, on, expected age)
AGE_CASES = [
    pytest.param(D(2010, 6, 15), D(2010, 6, 15), 0, id="day-of-birth"),
    pytest.param(D(2010, 6, 15), D(2010, 12, 31), 0, id="same-year"),
    pytest.param(D(2010, 6, 15), D(2028, 6, 14), 17, id="day-before-18th"),
    pytest.param(D(2010, 6, 15), D(2028, 6, 15), 18, id="18th-birthday"),
    pytest.param(D(2010, 6, 15), D(2028, 6, 16), 18, id="day-after-18th"),
    pytest.param(D(2010, 12, 31), D(2011, 1, 1), 0, id="new-year-after-birth"),
    pytest.param(D(2004, 2, 29), D(2005, 2, 28), 0, id="29-feb-not-yet-1"),
    pytest.param(D(2004, 2, 29), D(2005, 3, 1), 1, id="29-feb-1-on-1-march"),
    pytest.param(D(2004, 2, 29), D(2022, 2, 28), 17, id="29-feb-still-17-on-28-feb"),
    pytest.param(D(2004, 2, 29), D(2022, 3, 1), 18, id="29-feb-18-on-1-march"),
    pytest.param(D(2004, 2, 29), D(2028, 2, 28), 23, id="29-feb-leap-year-day-before"),
    pytest.param(D(2004, 2, 29), D(2028, 2, 29), 24, id="29-feb-leap-year-birthday"),
    pytest.param(D(2004, 2, 29), D(2029, 2, 28), 24, id="29-feb-24-on-28-feb-2029"),
    pytest.param(D(2004, 2, 29), D(2029, 3, 1), 25, id="29-feb-25-on-1-march-2029"),
]


@pytest.mark.parametrize(("dob", "on", "expected"), AGE_CASES)
def test_age_on(dob: dt.date, on: dt.date, expected: int) -> None:
    """Age in whole years, a 29 February birthday being reached on 1 March in common years."""
    assert age_on(dob, on) == expected


# (anchor, period, round_to, after_period_end, missing_day, expected)
DUE_FROM_CASES = [
    pytest.param(D(2019, 3, 10), "6y", None, False, "next_day", D(2025, 3, 10), id="plain"),
    pytest.param(D(2019, 3, 10), "6y", "academic_year_end", False, "next_day",
                 D(2025, 8, 31), id="academic"),
    pytest.param(D(2019, 3, 10), "6y", "academic_year_end", True, "next_day",
                 D(2025, 9, 1), id="academic-after"),
    pytest.param(D(2019, 8, 31), "6y", "academic_year_end", False, "next_day",
                 D(2025, 8, 31), id="academic-already-on-end"),
    pytest.param(D(2019, 8, 31), "6y", "academic_year_end", True, "next_day",
                 D(2025, 9, 1), id="academic-on-end-after"),
    pytest.param(D(2019, 9, 1), "6y", "academic_year_end", False, "next_day",
                 D(2026, 8, 31), id="academic-day-after-end"),
    pytest.param(D(2019, 4, 1), "6y", "financial_year_end", False, "next_day",
                 D(2026, 3, 31), id="financial"),
    pytest.param(D(2019, 4, 1), "6y", "financial_year_end", True, "next_day",
                 D(2026, 4, 1), id="financial-after"),
    pytest.param(D(2019, 3, 31), "6y", "financial_year_end", True, "next_day",
                 D(2025, 4, 1), id="financial-on-end-after"),
    pytest.param(D(2019, 5, 5), "1y", "calendar_year_end", False, "next_day",
                 D(2020, 12, 31), id="calendar"),
    pytest.param(D(2019, 5, 5), "1y", "calendar_year_end", True, "next_day",
                 D(2021, 1, 1), id="calendar-after"),
    pytest.param(D(2020, 1, 1), "1y", None, True, "next_day", D(2021, 1, 2),
                 id="after-without-rounding"),
    pytest.param(D(2004, 2, 29), "25y", "academic_year_end", False, "next_day",
                 D(2029, 8, 31), id="29-feb-then-academic"),
    pytest.param(D(2004, 2, 29), "25y", None, True, "next_day", D(2029, 3, 2),
                 id="29-feb-next-day-then-after"),
    pytest.param(D(2004, 2, 29), "25y", None, True, "last_day", D(2029, 3, 1),
                 id="29-feb-last-day-then-after"),
    pytest.param(D(2003, 2, 28), "1y", "financial_year_end", False, "last_day",
                 D(2004, 3, 31), id="last-day-irrelevant-when-rounded"),
]


@pytest.mark.parametrize(
    ("anchor", "period", "round_to", "after", "missing_day", "expected"), DUE_FROM_CASES
)
def test_due_from(
    anchor: dt.date, period: str, round_to: str | None, after: bool, missing_day: str,
    expected: dt.date,
) -> None:
    """Due date = trigger + period, then rounded up to a period end, then +1 day if "after"."""
    alternative = alt("opened_on", period, round_to=round_to, after_period_end=after,
                      missing_day=missing_day)
    assert due_from(alternative, anchor) == expected
