"""Seeding the default policy lines of policy.csv into casbin_rule, in file order."""

from __future__ import annotations

from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from authz.models import CasbinRule
from authz.rules import read_policy_csv


async def seed_default_policy(session: AsyncSession) -> int:
    """Insert every line of policy.csv that is missing; returns how many were added."""
    added = 0
    for line in read_policy_csv():
        values = dict(zip(("v0", "v1", "v2", "v3", "v4", "v5"), line.values, strict=False))
        inserted = await session.scalar(
            insert(CasbinRule)
            .values(ptype=line.ptype, **values)
            .on_conflict_do_nothing(constraint="uq_casbin_rule_line")
            .returning(CasbinRule.id)
        )
        added += inserted is not None
    return added
