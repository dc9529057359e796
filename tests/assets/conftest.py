"""Fixtures of the asset tests: a fresh estate under office N1 with two buildings, removed
afterwards with everything made on it (assets, plans, their tickets and records)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from assets_support import Site
from sqlalchemy import delete, select, text, update

from backend.assets.models import Asset, MaintenancePlan, MaintenanceRecord
from backend.property.models import Building, Estate, OrgUnit
from backend.seed_assets import ensure_demo_assets
from backend.tickets.models import Ticket, TicketEscalation, TicketEvent


async def make_site(runtime: Any, office_code: str = "N1") -> Site:
    code = f"AS{uuid.uuid4().hex[:8].upper()}"
    async with runtime.sessionmaker() as session, session.begin():
        office = await session.scalar(select(OrgUnit).where(OrgUnit.code == office_code))
        assert office is not None
        estate = Estate(org_unit_id=office.id, org_path=office.path, code=code, name="设备测试")
        session.add(estate)
        await session.flush()
        buildings = [Building(estate_id=estate.id, code=c, name=f"{c}号楼", floors=18) for c in ("1", "2")]
        session.add_all(buildings)
        await session.flush()
    return Site(estate, buildings)


async def remove_site(runtime: Any, site: Site) -> None:
    async with runtime.sessionmaker() as session, session.begin():
        # Ticket events are append-only; their trigger stands aside for this transaction only.
        await session.execute(text("SET LOCAL session_replication_role = replica"))
        estate_id = site.estate.id
        tickets = select(Ticket.id).where(Ticket.estate_id == estate_id)
        plans = select(MaintenancePlan.id).where(MaintenancePlan.estate_id == estate_id)
        assets = select(Asset.id).where(Asset.estate_id == estate_id)
        await session.execute(
            delete(MaintenanceRecord).where(
                MaintenanceRecord.plan_id.in_(plans) | MaintenanceRecord.asset_id.in_(assets)
            )
        )
        await session.execute(delete(TicketEscalation).where(TicketEscalation.ticket_id.in_(tickets)))
        await session.execute(delete(TicketEvent).where(TicketEvent.ticket_id.in_(tickets)))
        await session.execute(delete(Ticket).where(Ticket.estate_id == estate_id))
        await session.execute(delete(MaintenancePlan).where(MaintenancePlan.estate_id == estate_id))
        await session.execute(update(Asset).where(Asset.estate_id == estate_id).values(parent_id=None))
        await session.execute(delete(Asset).where(Asset.estate_id == estate_id))
        await session.execute(delete(Building).where(Building.estate_id == estate_id))
        await session.execute(delete(Estate).where(Estate.id == estate_id))


@pytest_asyncio.fixture(loop_scope="session")
async def site(runtime: Any) -> AsyncIterator[Site]:
    made = await make_site(runtime)
    yield made
    await remove_site(runtime, made)


@pytest_asyncio.fixture(loop_scope="session")
async def south_site(runtime: Any) -> AsyncIterator[Site]:
    made = await make_site(runtime, "S1")
    yield made
    await remove_site(runtime, made)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def demo_assets(runtime: Any) -> int:
    """The demo equipment and plans (backend.seed_assets), once per test session."""
    async with runtime.sessionmaker() as session, session.begin():
        return await ensure_demo_assets(session)
