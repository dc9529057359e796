"""The per-process fan-out of swipes to ``accessEventAdded`` subscribers.

For each event on ``ACCESS_CHANNEL`` the hub picks the subscribers whose filter (estate,
access point) the message matches and, if there are any, runs ONE statement: the swipe with
its estate, access point, person and visitor pass, plus, for each distinct row scope among
those subscribers (``authz.scopes.predicate``, the same rule every access-event list uses), a
column telling whether that scope includes the swipe. Guards of one estate share one scope,
so the statement stays small; each resident brings their own. The same payload goes to every
subscriber whose scope includes the swipe (see schema/core/live.py).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Sequence
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import joinedload

from authz.principal import Permissions
from authz.scopes import predicate
from backend.access.ingest import ACCESS_CHANNEL
from backend.access.models import AccessEvent
from backend.events import Event, EventBus
from schema.core.live import EventHub, Subscriber


class AccessSubscriber(Subscriber[AccessEvent]):
    def __init__(
        self,
        permissions: Permissions,
        estate_id: int | None,
        access_point_id: int | None,
        queue_size: int,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(queue_size, on_drop)
        self.permissions = permissions
        self.estate_id = estate_id
        self.access_point_id = access_point_id

    def wants(self, message: Event) -> bool:
        return (self.estate_id is None or message.get("estateId") == self.estate_id) and (
            self.access_point_id is None or message.get("accessPointId") == self.access_point_id
        )


class AccessHub(EventHub[AccessEvent, AccessSubscriber]):
    channel = ACCESS_CHANNEL

    def add(
        self,
        permissions: Permissions,
        *,
        estate_id: int | None = None,
        access_point_id: int | None = None,
        on_drop: Callable[[], None] | None = None,
    ) -> AccessSubscriber:
        return self.attach(AccessSubscriber(permissions, estate_id, access_point_id, self.queue_size, on_drop))

    def event_key(self, message: Event) -> Hashable | None:
        return message.get("id")  # type: ignore[no-any-return]

    async def load(
        self, message: Event, subscribers: Sequence[AccessSubscriber]
    ) -> tuple[AccessEvent, Sequence[AccessSubscriber]] | None:
        interested = [subscriber for subscriber in subscribers if subscriber.wants(message)]
        if not interested:
            return None
        # The scopes are built now, so that a changed policy applies from the next swipe on;
        # predicate() returns the same (cached) expression for the same scope.
        scopes: dict[int, tuple[ColumnElement[bool], list[AccessSubscriber]]] = {}
        for subscriber in interested:
            scope = predicate(AccessEvent, subscriber.permissions)
            scopes.setdefault(id(scope), (scope, []))[1].append(subscriber)
        columns = [scope.label(f"in_scope_{n}") for n, (scope, _) in enumerate(scopes.values())]
        statement = (
            select(AccessEvent, *columns)
            .where(AccessEvent.id == message.get("id"))
            .options(
                joinedload(AccessEvent.estate),
                joinedload(AccessEvent.access_point),
                joinedload(AccessEvent.person),
                joinedload(AccessEvent.visitor_pass),
            )
        )
        self.loads += 1
        async with self.session() as session:
            row = (await session.execute(statement)).one_or_none()
        if row is None:
            return None
        event, *in_scope = row
        recipients = [s for (_, group), seen in zip(scopes.values(), in_scope, strict=True) if seen for s in group]
        return event, recipients


_hubs: weakref.WeakKeyDictionary[Any, AccessHub] = weakref.WeakKeyDictionary()


def hub_for(sessionmaker: async_sessionmaker[AsyncSession], bus: EventBus) -> AccessHub:
    """The process's hub for this events bus, made on first use."""
    hub = _hubs.get(bus)
    if hub is None:
        hub = AccessHub(sessionmaker, bus)
        _hubs[bus] = hub
    return hub
