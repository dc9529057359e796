"""When maintenance falls due: every N days, every N months, or by a 5-field cron expression.

Only the date matters (a plan falls due on a day), so a cron expression's minute and hour
fields are validated but do not move the date. Day of month and day of week follow cron's
rule: when both are restricted, a day matching either one matches.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

from backend.assets.errors import AssetError, AssetErrorCode

# A schedule that matches no day within this many days (e.g. "0 0 30 2 *") is refused.
_HORIZON_DAYS = 366 * 8 + 2

_MONTHS = {name.lower(): i for i, name in enumerate(calendar.month_abbr) if name}
_WEEKDAYS = {"sun": 0, "mon": 1, "tue": 2, "wed": 3, "thu": 4, "fri": 5, "sat": 6}


def _invalid(message: str) -> AssetError:
    return AssetError(AssetErrorCode.INVALID_CRON, message, "cron")


def _value(text: str, low: int, high: int, names: dict[str, int]) -> int:
    value = names.get(text.lower()) if names else None
    if value is None:
        if not text.isdigit():
            raise _invalid(f"{text!r} is not a number in {low}–{high}.")
        value = int(text)
    if not low <= value <= high:
        raise _invalid(f"{value} is outside {low}–{high}.")
    return value


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    """The values a cron field allows: ``*``, ``n``, ``a-b``, each with an optional ``/step``,
    separated by commas."""
    names = names or {}
    allowed: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) < 1:
                raise _invalid(f"{part!r}: a step is a positive number.")
            step = int(step_text)
        if base == "*":
            first, last = low, high
        elif "-" in base:
            start, _, end = base.partition("-")
            first, last = _value(start, low, high, names), _value(end, low, high, names)
            if first > last:
                raise _invalid(f"{part!r}: a range goes up.")
        else:
            first = _value(base, low, high, names)
            last = high if slash else first
        allowed.update(range(first, last + 1, step))
    return frozenset(allowed)


@dataclass(frozen=True, slots=True)
class CronSchedule:
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]  # 0 = Sunday
    dom_restricted: bool
    dow_restricted: bool

    def matches(self, day: dt.date) -> bool:
        if day.month not in self.months:
            return False
        dom = day.day in self.days_of_month
        dow = (day.weekday() + 1) % 7 in self.days_of_week
        if self.dom_restricted and self.dow_restricted:
            return dom or dow
        return dom and dow

    def next_after(self, day: dt.date) -> dt.date:
        """The first matching day after ``day``."""
        candidate = day
        for _ in range(_HORIZON_DAYS):
            candidate += dt.timedelta(days=1)
            if self.matches(candidate):
                return candidate
        raise _invalid("The expression matches no day.")


def parse_cron(expression: str) -> CronSchedule:
    """A 5-field cron expression (minute hour day-of-month month day-of-week), or INVALID_CRON."""
    fields = expression.split()
    if len(fields) != 5:
        raise _invalid("A cron expression has 5 fields: minute hour day-of-month month day-of-week.")
    minute, hour, dom, month, dow = fields
    _field(minute, 0, 59)
    _field(hour, 0, 23)
    weekdays = _field(dow, 0, 7, _WEEKDAYS)
    schedule = CronSchedule(
        days_of_month=_field(dom, 1, 31),
        months=_field(month, 1, 12, _MONTHS),
        days_of_week=frozenset(d % 7 for d in weekdays),
        dom_restricted=not dom.startswith("*"),
        dow_restricted=not dow.startswith("*"),
    )
    schedule.next_after(dt.date(2000, 1, 1))  # refuses an expression matching no day
    return schedule


def add_months(day: dt.date, months: int) -> dt.date:
    """``day`` moved by whole months, on the month's last day if it is shorter (Jan 31 + 1 → Feb 28)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def next_due(after: dt.date, *, interval_days: int | None, interval_months: int | None, cron: str | None) -> dt.date:
    """The next due date counted from ``after`` (a completion day): + the interval, or the
    cron's next matching day after it."""
    if interval_days is not None:
        return after + dt.timedelta(days=interval_days)
    if interval_months is not None:
        return add_months(after, interval_months)
    if cron is not None:
        return parse_cron(cron).next_after(after)
    raise AssetError(AssetErrorCode.INVALID_SCHEDULE, "A plan needs an interval or a cron expression.", "intervalDays")
