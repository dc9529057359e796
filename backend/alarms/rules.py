"""Telemetry rules → alarms (ThingsBoard's model): thresholds with hysteresis and an
optional duration, per device or per kind of device (optionally in one estate).

For each metric of a telemetry message, the active rules that match the device:

- ABOVE: the value is *beyond* when ``> raise_threshold`` and *recovered* when
  ``<= clear_threshold``; BELOW mirrored (``<`` raise, ``>=`` clear). Between the two
  (the hysteresis band) nothing changes.
- Beyond: with ``duration_seconds`` 0 the (device, type) alarm is raised at once; with a
  duration the first beyond reading is remembered (``AlarmRuleState.breached_since``) and
  the alarm is raised by the first reading beyond the threshold that long after it. A
  reading that is not beyond forgets it.
- An open alarm is not raised again by further beyond readings (no occurrence per
  reading); recovered clears it (by the device: ``cleared_by`` None).

A device's own rule wins over a kind rule of the same metric and alarm type. A
:class:`RuleBook` reads, in one statement for a whole batch of readings, the rules that match
its devices with their states and open alarms; state is written only when it changes, so a
batch costs a fixed, small number of statements.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Integer, String, and_, column, or_, select, values
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from backend.alarms.errors import AlarmError
from backend.alarms.models import Alarm, AlarmRule, AlarmRuleState, AlarmStatus, RuleOperator
from backend.alarms.service import AlarmChange, clear, raise_alarm
from backend.db import utcnow


@dataclass(frozen=True, slots=True)
class RuleTarget:
    """What rules are matched against: a bound device."""

    device_id: str
    kind: str  # DeviceKind name
    estate_id: int
    company_id: int
    asset_id: int | None = None


def _decimal(value: float) -> Decimal:
    return Decimal(repr(value))


def _plain(value: Decimal) -> str:
    return format(value.normalize(), "f")


async def evaluate(
    session: AsyncSession, target: RuleTarget, metrics: Mapping[str, float], *, at: dt.datetime
) -> list[AlarmChange]:
    """Apply the matching rules to one reading; return the alarm changes made."""
    book = await RuleBook.load(session, [(target, metrics)])
    return await book.apply(session, target, metrics, at=at)


class RuleBook:
    """The rules, rule states and open alarms that a batch of readings needs, read in at most
    three statements (one when no rule matches), then applied reading by reading in memory;
    only changes are written, and the book follows them (a raise seen by the next reading of
    the same device in the batch)."""

    def __init__(
        self,
        rules: list[AlarmRule],
        since: dict[tuple[int, str], dt.datetime | None],
        open_alarms: dict[tuple[str, str], int],
    ) -> None:
        self._rules = rules
        self._since = since
        self._open = open_alarms

    @classmethod
    async def load(cls, session: AsyncSession, readings: Sequence[tuple[RuleTarget, Mapping[str, float]]]) -> RuleBook:
        """One statement: the active rules of the readings' metrics that match any of their
        devices, each with its state for that device and the open alarm of its type."""
        targets = {target.device_id: target for target, metrics in readings if metrics}
        names = {name for _target, metrics in readings for name in metrics}
        if not targets:
            return cls([], {}, {})
        devices = values(
            column("device_id", String),
            column("kind", String),
            column("estate_id", Integer),
            column("company_id", Integer),
            name="batch_devices",
        ).data([(t.device_id, t.kind, t.estate_id, t.company_id) for t in targets.values()])
        rows = await session.execute(
            select(AlarmRule, devices.c.device_id, AlarmRuleState.breached_since, Alarm.id)
            .join(
                devices,
                and_(
                    AlarmRule.company_id == devices.c.company_id,
                    or_(
                        AlarmRule.device_id == devices.c.device_id,
                        and_(
                            AlarmRule.device_kind == devices.c.kind,
                            or_(AlarmRule.estate_id.is_(None), AlarmRule.estate_id == devices.c.estate_id),
                        ),
                    ),
                ),
            )
            .outerjoin(
                AlarmRuleState,
                and_(AlarmRuleState.rule_id == AlarmRule.id, AlarmRuleState.device_id == devices.c.device_id),
            )
            .outerjoin(
                Alarm,
                and_(
                    Alarm.device_id == devices.c.device_id,
                    Alarm.type == AlarmRule.alarm_type,
                    Alarm.status != AlarmStatus.CLEARED,
                ),
            )
            .where(AlarmRule.active, AlarmRule.metric.in_(names))
            .order_by(AlarmRule.id)
        )
        rules: dict[int, AlarmRule] = {}
        since: dict[tuple[int, str], dt.datetime | None] = {}
        open_alarms: dict[tuple[str, str], int] = {}
        for rule, device_id, breached_since, alarm_id in rows:
            rules[rule.id] = rule
            since[(rule.id, device_id)] = breached_since
            if alarm_id is not None:
                open_alarms[(device_id, rule.alarm_type)] = alarm_id
        return cls(list(rules.values()), since, open_alarms)

    def track(self, change: AlarmChange) -> None:
        """Follow an alarm change made outside the rules (a device event, an access burst)."""
        key = (change.alarm.device_id, change.alarm.type)
        if change.alarm.status is AlarmStatus.CLEARED:
            self._open.pop(key, None)
        else:
            self._open[key] = change.alarm.id

    def _matching(self, target: RuleTarget, metrics: Mapping[str, float]) -> list[AlarmRule]:
        matched = [
            rule
            for rule in self._rules
            if rule.company_id == target.company_id
            and rule.metric in metrics
            and (
                rule.device_id == target.device_id
                or (
                    rule.device_id is None
                    and rule.device_kind == target.kind
                    and (rule.estate_id is None or rule.estate_id == target.estate_id)
                )
            )
        ]
        own = {(rule.metric, rule.alarm_type) for rule in matched if rule.device_id is not None}
        # A device's own rule wins over a kind rule of the same metric and alarm type.
        return [rule for rule in matched if rule.device_id is not None or (rule.metric, rule.alarm_type) not in own]

    async def apply(
        self, session: AsyncSession, target: RuleTarget, metrics: Mapping[str, float], *, at: dt.datetime
    ) -> list[AlarmChange]:
        """Apply the matching rules to one reading; return the alarm changes made."""
        if not self._rules or not metrics:
            return []
        changes: list[AlarmChange] = []
        for rule in self._matching(target, metrics):
            state_key = (rule.id, target.device_id)
            alarm_key = (target.device_id, rule.alarm_type)
            breached_since = self._since.get(state_key)
            open_alarm_id = self._open.get(alarm_key)
            value = _decimal(metrics[rule.metric])
            if rule.operator is RuleOperator.ABOVE:
                beyond, recovered = value > rule.raise_threshold, value <= rule.clear_threshold
                sign = ">"
            else:
                beyond, recovered = value < rule.raise_threshold, value >= rule.clear_threshold
                sign = "<"
            if beyond:
                if rule.duration_seconds > 0:
                    if breached_since is None:
                        breached_since = self._since[state_key] = at
                        await _remember(session, rule.id, target.device_id, at, value)
                    if at - breached_since < dt.timedelta(seconds=rule.duration_seconds):
                        continue
                if open_alarm_id is None:
                    threshold = _plain(rule.raise_threshold)
                    change = await raise_alarm(
                        session,
                        estate_id=target.estate_id,
                        device_id=target.device_id,
                        type_=rule.alarm_type,
                        severity=rule.severity,
                        message=f"{rule.metric} {_plain(value)} {sign} {threshold}",
                        details={"metric": rule.metric, "value": _plain(value), "threshold": threshold},
                        asset_id=target.asset_id,
                        rule_id=rule.id,
                        at=at,
                    )
                    self._open[alarm_key] = change.alarm.id
                    changes.append(change)
                continue
            if breached_since is not None:
                self._since[state_key] = None
                await _remember(session, rule.id, target.device_id, None, value)
            if recovered and open_alarm_id is not None:
                self._open.pop(alarm_key, None)
                with contextlib.suppress(AlarmError):  # cleared meanwhile by staff
                    changes.append(
                        await clear(session, open_alarm_id, actor_id=None, note=f"{rule.metric} {_plain(value)}", at=at)
                    )
        return changes


async def _remember(
    session: AsyncSession, rule_id: int, device_id: str, since: dt.datetime | None, value: Decimal
) -> None:
    statement = insert(AlarmRuleState).values(
        rule_id=rule_id, device_id=device_id, breached_since=since, last_value=value, updated_at=utcnow()
    )
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=[AlarmRuleState.rule_id, AlarmRuleState.device_id],
            set_={
                "breached_since": statement.excluded.breached_since,
                "last_value": statement.excluded.last_value,
                "updated_at": statement.excluded.updated_at,
            },
        )
    )
