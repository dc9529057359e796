"""The migrations build exactly the schema the models describe, and undo cleanly."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import create_async_engine

import backend.models  # noqa: F401  (every model on Base.metadata)
from backend.db import Base
from backend.migrate import alembic_config, upgrade


@pytest_asyncio.fixture(loop_scope="session")
async def empty_database(services: Any) -> AsyncIterator[str]:
    name = f"wuye_migrations_{uuid.uuid4().hex[:10]}"
    admin = create_async_engine(services.database_admin_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as connection:
        await connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(services.database_admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as connection:
            await connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


def _differences(connection: Any) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def _diff(url: str) -> list[Any]:
    engine = create_async_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(_differences)
    finally:
        await engine.dispose()


async def test_the_migrated_schema_matches_the_models(empty_database: str) -> None:
    # given
    await asyncio.to_thread(upgrade, empty_database)
    # when
    differences = await _diff(empty_database)
    # then
    assert differences == []


async def test_every_migration_downgrades_and_upgrades_again(empty_database: str) -> None:
    # given the schema at head
    await asyncio.to_thread(upgrade, empty_database)
    # when everything is undone and redone
    await asyncio.to_thread(command.downgrade, alembic_config(empty_database), "base")
    await asyncio.to_thread(upgrade, empty_database)
    # then the schema is whole again
    assert await _diff(empty_database) == []
