"""Fixtures of the ticket tests: the demo places and people, read once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from sqlalchemy import select, update
from tickets_support import Demo, load_demo

from backend.property.models import Estate


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def demo(runtime: Any) -> Demo:
    return await load_demo(runtime)


@pytest_asyncio.fixture(scope="session", loop_scope="session", autouse=True)
async def manual_dispatch_in_demo_a(runtime: Any) -> AsyncIterator[None]:
    """The demo assigns DEMO-A's tickets automatically; these tests assign by hand, so the
    switch is off while they run (tests/tickets_sla covers automatic dispatch)."""
    async with runtime.sessionmaker() as session, session.begin():
        before = await session.scalar(select(Estate.auto_assign_tickets).where(Estate.code == "DEMO-A"))
        await session.execute(update(Estate).where(Estate.code == "DEMO-A").values(auto_assign_tickets=False))
    yield
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(update(Estate).where(Estate.code == "DEMO-A").values(auto_assign_tickets=before))
