"""Error codes of the equipment register and maintenance plans."""

from __future__ import annotations

import enum


class AssetErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    INVALID_INPUT = "INVALID_INPUT"
    DUPLICATE_CODE = "DUPLICATE_CODE"  # an asset code is unique per company
    DUPLICATE_TAG = "DUPLICATE_TAG"  # a QR / RFID tag is unique per company
    DUPLICATE_DEVICE_ID = "DUPLICATE_DEVICE_ID"  # an MQTT device id belongs to one asset
    INVALID_BUILDING = "INVALID_BUILDING"  # not a building of the asset's estate
    INVALID_PARENT = "INVALID_PARENT"  # not an asset of the same estate, or retired
    PARENT_CYCLE = "PARENT_CYCLE"  # the asset would become its own ancestor
    INVALID_DATES = "INVALID_DATES"  # warranty ends before the installation
    ASSET_RETIRED = "ASSET_RETIRED"  # a retired asset is not edited, planned or retired again
    INVALID_SCHEDULE = "INVALID_SCHEDULE"  # not exactly one of intervalDays, intervalMonths, cron
    INVALID_CRON = "INVALID_CRON"
    INVALID_TARGET = "INVALID_TARGET"  # not exactly one of assetId, assetType
    INVALID_CHECKLIST = "INVALID_CHECKLIST"
    INVALID_ASSIGNEE = "INVALID_ASSIGNEE"  # not a staff account holding a role over the estate
    PLAN_INACTIVE = "PLAN_INACTIVE"


class AssetError(Exception):
    def __init__(self, code: AssetErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
