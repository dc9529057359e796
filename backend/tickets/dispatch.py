"""Dispatch hooks of the ticket workflow: implemented on the sla branch (auto-assignment on
submit, telling the assignee). Here they do nothing, so the workflow can call them already."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from backend.tickets.models import Ticket


async def after_submit(session: AsyncSession, ticket: Ticket, *, actor_id: int | None) -> None:
    """Implemented on the sla branch."""


async def after_assign(session: AsyncSession, ticket: Ticket, *, actor_id: int | None) -> None:
    """Implemented on the sla branch."""
