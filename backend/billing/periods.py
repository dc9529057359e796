"""Billing periods: a month ``2026-11``; the quarter or year a cycle bills in that month."""

from __future__ import annotations

import calendar
import datetime as dt
import re
from dataclasses import dataclass

from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.models import BillingCycle

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True, slots=True)
class Period:
    label: str
    start: dt.date
    end: dt.date  # inclusive
    months: int


def parse_month(value: str) -> dt.date:
    """``2026-11`` → 2026-11-01; anything else is an INVALID_PERIOD error."""
    match = _MONTH.fullmatch(value.strip())
    if match is None or not 2000 <= int(match.group(1)) <= 2100:
        raise BillingError(BillingErrorCode.INVALID_PERIOD, "A period is a month: YYYY-MM.", "period")
    return dt.date(int(match.group(1)), int(match.group(2)), 1)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.month - 1 + months
    return dt.date(day.year + index // 12, index % 12 + 1, 1)


def next_month(month: dt.date) -> dt.date:
    """The first day of the month after ``month``'s."""
    return _add_months(month, 1)


def billed_period(month: dt.date, cycle: BillingCycle) -> Period | None:
    """The period a fee item of ``cycle`` bills in ``month``, or None if it bills nothing then.

    Monthly items bill every month; quarterly ones in January, April, July and October for
    the quarter; yearly ones in January for the year.
    """
    if cycle is BillingCycle.QUARTERLY and month.month not in (1, 4, 7, 10):
        return None
    if cycle is BillingCycle.YEARLY and month.month != 1:
        return None
    end = _add_months(month, cycle.months) - dt.timedelta(days=1)
    if cycle is BillingCycle.MONTHLY:
        label = f"{month.year}-{month.month:02d}"
    elif cycle is BillingCycle.QUARTERLY:
        label = f"{month.year}-Q{(month.month - 1) // 3 + 1}"
    else:
        label = str(month.year)
    return Period(label=label, start=month, end=end, months=cycle.months)


def due_date(period_start: dt.date, due_day: int) -> dt.date:
    last = calendar.monthrange(period_start.year, period_start.month)[1]
    return period_start.replace(day=min(due_day, last))
