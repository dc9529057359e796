"""Demo alarm rules and device bindings (idempotent). Runs after ``ensure_demo_assets``:
the demo sensors' assets carry the device id, and each demo device is bound to its asset.

The rule is CONTRACT.md's: ``DEMO-A-TEMP-01`` temperature above 60 raises a MAJOR
``over_temperature`` alarm, at or below 55 clears it.
"""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from backend.alarms.models import AlarmRule, AlarmSeverity, RuleOperator
from backend.assets.models import Asset
from backend.devices.ingest import company_of
from backend.devices.models import Device
from backend.property.models import Estate

# (estate, device id, metric, operator, raise, clear, duration s, alarm type, severity)
DEMO_RULES = (
    ("DEMO-A", "DEMO-A-TEMP-01", "temperature", RuleOperator.ABOVE, Decimal(60), Decimal(55), 0,
     "over_temperature", AlarmSeverity.MAJOR),
)  # fmt: skip


async def ensure_demo_rules(session: AsyncSession) -> int:
    """Create the missing demo rules and bind unbound devices to the asset that names them;
    returns how many rules were created."""
    created = 0
    for estate_code, device_id, metric, operator, raise_at, clear_at, duration, type_, severity in DEMO_RULES:
        estate = await session.scalar(select(Estate).where(Estate.code == estate_code))
        if estate is None:
            continue
        exists = await session.scalar(
            select(AlarmRule.id).where(
                AlarmRule.device_id == device_id, AlarmRule.metric == metric, AlarmRule.alarm_type == type_
            )
        )
        if exists is not None:
            continue
        session.add(
            AlarmRule(
                company_id=company_of(estate.org_path),
                estate_id=estate.id,
                device_id=device_id,
                metric=metric,
                operator=operator,
                raise_threshold=raise_at,
                clear_threshold=clear_at,
                duration_seconds=duration,
                alarm_type=type_,
                severity=severity,
            )
        )
        created += 1
    await session.execute(
        update(Device)
        .where(Device.asset_id.is_(None), Device.device_id == Asset.device_id)
        .values(asset_id=Asset.id)
        .execution_options(synchronize_session=False)
    )
    await session.flush()
    return created
