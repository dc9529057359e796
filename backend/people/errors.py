"""Error codes of the people domain."""

from __future__ import annotations

import enum


class PeopleErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    INVALID_PHONE = "INVALID_PHONE"
    INVALID_ID_NUMBER = "INVALID_ID_NUMBER"
    INVALID_EMAIL = "INVALID_EMAIL"
    INVALID_SHARE = "INVALID_SHARE"
    INVALID_PERIOD = "INVALID_PERIOD"
    DUPLICATE_OCCUPANCY = "DUPLICATE_OCCUPANCY"
    ALREADY_ENDED = "ALREADY_ENDED"


class PeopleError(Exception):
    def __init__(self, code: PeopleErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
