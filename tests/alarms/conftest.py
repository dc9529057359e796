"""Fixtures of the alarm API tests: fresh device ids whose alarms are removed afterwards."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest_asyncio
from alarms_support import new_device, remove_alarms


@pytest_asyncio.fixture(loop_scope="session")
async def devices(runtime: Any) -> AsyncIterator[Callable[[], str]]:
    """``devices()`` → a fresh device id; every alarm of those devices is removed afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(new_device())
        return made[-1]

    yield make
    await remove_alarms(runtime, made)
