"""Error codes of work orders."""

from __future__ import annotations

import enum


class TicketErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    ILLEGAL_TRANSITION = "ILLEGAL_TRANSITION"  # the ticket's status does not allow this step
    CONCURRENT_UPDATE = "CONCURRENT_UPDATE"  # someone changed the ticket since it was read
    REOPEN_WINDOW_CLOSED = "REOPEN_WINDOW_CLOSED"
    ALREADY_RATED = "ALREADY_RATED"
    INVALID_RATING = "INVALID_RATING"
    INVALID_CATEGORY = "INVALID_CATEGORY"
    INVALID_SCOPE = "INVALID_SCOPE"  # neither the reporter's unit nor a public area of their estate
    INVALID_INPUT = "INVALID_INPUT"
    INVALID_PHOTO_URL = "INVALID_PHOTO_URL"
    INVALID_APPOINTMENT = "INVALID_APPOINTMENT"
    INVALID_ASSIGNEE = "INVALID_ASSIGNEE"
    INVALID_CHARGE = "INVALID_CHARGE"
    NOTE_REQUIRED = "NOTE_REQUIRED"
    RETURN_VISIT_REQUIRED = "RETURN_VISIT_REQUIRED"


class TicketError(Exception):
    def __init__(self, code: TicketErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
