"""Error codes of the property domain."""

from __future__ import annotations

import enum


class PropertyErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    DUPLICATE_CODE = "DUPLICATE_CODE"
    INVALID_RANGE = "INVALID_RANGE"
    INVALID_AREA = "INVALID_AREA"
    INVALID_FORMAT = "INVALID_FORMAT"
    TOO_MANY_UNITS = "TOO_MANY_UNITS"
    UNITS_EXIST = "UNITS_EXIST"
    IMPORT_INVALID = "IMPORT_INVALID"


class PropertyError(Exception):
    def __init__(self, code: PropertyErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
