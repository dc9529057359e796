"""Due dates: intervals in days and months, and 5-field cron expressions."""

from __future__ import annotations

import datetime as dt

import pytest

from backend.assets.errors import AssetError, AssetErrorCode
from backend.assets.schedule import add_months, next_due, parse_cron

D = dt.date


@pytest.mark.parametrize(("expression", "after", "expected"), [
    ("0 8 1 * *", D(2026, 3, 5), D(2026, 4, 1)),  # the 1st of each month
    ("0 8 1 * *", D(2026, 3, 1), D(2026, 4, 1)),  # strictly after
    ("30 6 * * 1", D(2026, 3, 5), D(2026, 3, 9)),  # Mondays (2026-03-05 is a Thursday)
    ("0 0 * * sun", D(2026, 3, 5), D(2026, 3, 8)),  # Sunday by name
    ("0 0 * * 7", D(2026, 3, 5), D(2026, 3, 8)),  # 7 is Sunday too
    ("0 0 15 1,4,7,10 *", D(2026, 4, 15), D(2026, 7, 15)),  # quarterly
    ("0 0 1 jan *", D(2026, 3, 5), D(2027, 1, 1)),  # month by name
    ("0 0 */10 * *", D(2026, 3, 11), D(2026, 3, 21)),  # 1, 11, 21, 31
    ("0 0 1-5 * *", D(2026, 3, 5), D(2026, 4, 1)),  # a range
    ("0 0 13 * 5", D(2026, 3, 5), D(2026, 3, 6)),  # day of month OR day of week when both restricted
    ("0 0 29 2 *", D(2026, 3, 1), D(2028, 2, 29)),  # leap days only
])  # fmt: skip
def test_a_cron_expression_gives_its_next_day(expression: str, after: dt.date, expected: dt.date) -> None:
    assert parse_cron(expression).next_after(after) == expected


@pytest.mark.parametrize("expression", [
    "0 8 1 *",  # four fields
    "0 8 1 * * *",  # six fields
    "60 8 1 * *",  # minute out of range
    "0 24 1 * *",  # hour out of range
    "0 8 0 * *",  # day 0
    "0 8 1 13 *",  # month 13
    "0 8 1 * 8",  # weekday 8
    "0 8 5-1 * *",  # range going down
    "0 8 */0 * *",  # step 0
    "0 8 x * *",  # not a number
    "0 0 30 2 *",  # 30 February never comes
])  # fmt: skip
def test_a_bad_cron_expression_is_refused(expression: str) -> None:
    with pytest.raises(AssetError) as caught:
        parse_cron(expression)
    assert caught.value.code is AssetErrorCode.INVALID_CRON


@pytest.mark.parametrize(("day", "months", "expected"), [
    (D(2026, 1, 31), 1, D(2026, 2, 28)),
    (D(2024, 1, 31), 1, D(2024, 2, 29)),
    (D(2026, 11, 15), 3, D(2027, 2, 15)),
    (D(2026, 3, 31), 12, D(2027, 3, 31)),
])  # fmt: skip
def test_months_are_added_on_the_calendar(day: dt.date, months: int, expected: dt.date) -> None:
    assert add_months(day, months) == expected


def test_the_next_due_date_counts_from_the_day_given() -> None:
    assert next_due(D(2026, 3, 5), interval_days=15, interval_months=None, cron=None) == D(2026, 3, 20)
    assert next_due(D(2026, 3, 5), interval_days=None, interval_months=3, cron=None) == D(2026, 6, 5)
    assert next_due(D(2026, 3, 5), interval_days=None, interval_months=None, cron="0 9 10 * *") == D(2026, 3, 10)
