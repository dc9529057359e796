"""Fixtures of the ticket tests: the demo places and people, read once."""

from __future__ import annotations

from typing import Any

import pytest_asyncio
from tickets_support import Demo, load_demo


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def demo(runtime: Any) -> Demo:
    return await load_demo(runtime)
