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

A device's own rule wins over a kind rule of the same metric and alarm type. One query
reads the rules, their state for the device and the open alarms; state is written only
when it changes, so a reading costs a fixed, small number of statements.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import and_, or_, select
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
    if not metrics:
        return []
    rows = (
        await session.execute(
            select(AlarmRule, AlarmRuleState.breached_since, Alarm.id)
            .outerjoin(
                AlarmRuleState,
                and_(AlarmRuleState.rule_id == AlarmRule.id, AlarmRuleState.device_id == target.device_id),
            )
            .outerjoin(
                Alarm,
                and_(
                    Alarm.device_id == target.device_id,
                    Alarm.type == AlarmRule.alarm_type,
                    Alarm.status != AlarmStatus.CLEARED,
                ),
            )
            .where(
                AlarmRule.active,
                AlarmRule.company_id == target.company_id,
                AlarmRule.metric.in_(list(metrics)),
                or_(
                    AlarmRule.device_id == target.device_id,
                    and_(
                        AlarmRule.device_kind == target.kind,
                        or_(AlarmRule.estate_id.is_(None), AlarmRule.estate_id == target.estate_id),
                    ),
                ),
            )
            .order_by(AlarmRule.id)
        )
    ).all()
    own = {(rule.metric, rule.alarm_type) for rule, _since, _alarm in rows if rule.device_id is not None}
    changes: list[AlarmChange] = []
    for rule, breached_since, open_alarm_id in rows:
        if rule.device_id is None and (rule.metric, rule.alarm_type) in own:
            continue  # the device's own rule decides
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
                    breached_since = at
                    await _remember(session, rule.id, target.device_id, at, value)
                if at - breached_since < dt.timedelta(seconds=rule.duration_seconds):
                    continue
            if open_alarm_id is None:
                threshold = _plain(rule.raise_threshold)
                changes.append(
                    await raise_alarm(
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
                )
            continue
        if breached_since is not None:
            await _remember(session, rule.id, target.device_id, None, value)
        if recovered and open_alarm_id is not None:
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
