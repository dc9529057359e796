"""Error codes of the billing domain."""

from __future__ import annotations

import enum


class BillingErrorCode(enum.Enum):
    NOT_FOUND = "NOT_FOUND"
    INVALID_PERIOD = "INVALID_PERIOD"
    INVALID_AMOUNT = "INVALID_AMOUNT"
    NO_BILLS = "NO_BILLS"
    BILLS_IN_SEVERAL_ESTATES = "BILLS_IN_SEVERAL_ESTATES"
    BILL_NOT_PAYABLE = "BILL_NOT_PAYABLE"
    AMOUNT_EXCEEDS_OUTSTANDING = "AMOUNT_EXCEEDS_OUTSTANDING"
    IDEMPOTENCY_KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"
    INVALID_IDEMPOTENCY_KEY = "INVALID_IDEMPOTENCY_KEY"
    REASON_REQUIRED = "REASON_REQUIRED"
    BILL_HAS_PAYMENTS = "BILL_HAS_PAYMENTS"
    DUPLICATE_CODE = "DUPLICATE_CODE"
    INVALID_CODE = "INVALID_CODE"
    INVALID_RATE = "INVALID_RATE"
    INVALID_DUE_DAY = "INVALID_DUE_DAY"
    RATE_EXISTS = "RATE_EXISTS"
    NO_UNITS = "NO_UNITS"
    ALREADY_REFUNDED = "ALREADY_REFUNDED"
    INVALID_METHOD = "INVALID_METHOD"
    PROVIDER_UNAVAILABLE = "PROVIDER_UNAVAILABLE"


class BillingError(Exception):
    def __init__(self, code: BillingErrorCode, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
