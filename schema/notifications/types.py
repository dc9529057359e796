"""Announcements (公告)."""

from __future__ import annotations

import datetime as dt

import strawberry

from backend.notifications import models
from schema.core.loaders import Relation, register_relation
from schema.core.relay import Node
from schema.core.types import orm_type
from schema.property.types import EstateType


@orm_type(models.Announcement, name="Announcement")
class AnnouncementType(Node):
    title: str
    body: str
    category: str
    published_at: dt.datetime
    expires_at: dt.datetime | None
    estates: list[EstateType] = strawberry.field(
        description="The estates it was published to, as far as the caller may see."
    )


register_relation(models.Announcement, "estates", Relation("estates"))
