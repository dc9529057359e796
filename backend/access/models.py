"""Access credentials (门禁卡, QR, PIN, face) held by persons; validity and revocation."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import DateTime, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from backend.db import Base, created_at_column, enum_column


class CredentialKind(enum.Enum):
    CARD = "card"
    QR = "qr"
    PIN = "pin"
    FACE = "face"


class Credential(Base):
    """``kind:identifier`` is what a gate controller reports, e.g. ``card:A1000001``."""

    __tablename__ = "access_credentials"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("persons.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[CredentialKind] = mapped_column(enum_column(CredentialKind))
    identifier: Mapped[str] = mapped_column(String(128))
    valid_from: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    valid_until: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[dt.datetime] = created_at_column()

    __table_args__ = (UniqueConstraint("kind", "identifier"),)

    @property
    def reference(self) -> str:
        return f"{self.kind.value}:{self.identifier}"
