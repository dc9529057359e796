"""Error codes of alarms."""

from __future__ import annotations

import enum


class AlarmErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"  # e.g. acknowledging a cleared alarm
    NOTE_REQUIRED = "NOTE_REQUIRED"
    INVALID_INPUT = "INVALID_INPUT"


class AlarmError(Exception):
    def __init__(self, code: AlarmErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
