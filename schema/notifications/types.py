"""Announcements (公告)."""

from __future__ import annotations

import datetime as dt

from backend.notifications import models
from schema.core.relay import Node
from schema.core.types import orm_type


@orm_type(models.Announcement, name="Announcement")
class AnnouncementType(Node):
    title: str
    body: str
    category: str
    published_at: dt.datetime
    expires_at: dt.datetime | None
