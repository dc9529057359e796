"""Error codes of the billing domain."""

from __future__ import annotations

import enum


class BillingErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    INVALID_PERIOD = "INVALID_PERIOD"


class BillingError(Exception):
    def __init__(self, code: BillingErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
