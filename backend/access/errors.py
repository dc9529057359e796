"""Error codes of access control (门禁)."""

from __future__ import annotations

import enum


class AccessErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    INVALID_WINDOW = "INVALID_WINDOW"  # a pass's window: in the past, reversed or longer than 7 days
    REQUIRED = "REQUIRED"
    INVALID_PHONE = "INVALID_PHONE"
    ALREADY_REVOKED = "ALREADY_REVOKED"
    DUPLICATE = "DUPLICATE"  # a credential's kind:identifier is taken, a device already bound
    INVALID_INPUT = "INVALID_INPUT"


class AccessError(Exception):
    def __init__(self, code: AccessErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
