"""Payment providers: the interface ONLINE payments go through, and the registry by name.

A provider takes an order for a PENDING payment (our order id, the amount, an expiry) and
answers with where the payer pays. It tells us the outcome later by a signed callback to
``POST /payments/callback/{provider}``, and answers queries about an order, which is how
reconciliation settles a payment whose callback never came. Everything a provider says is
an :class:`OrderReport`; the billing service decides what it means for our ledger.
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from backend.billing.sandbox import SandboxGateway
    from backend.settings import Settings

# A callback's timestamp may be this far from our clock, either way.
SIGNATURE_TOLERANCE_SECONDS = 300
TIMESTAMP_HEADER = "X-Sandbox-Timestamp"
SIGNATURE_HEADER = "X-Sandbox-Signature"


class OrderState(enum.Enum):
    PENDING = "PENDING"  # open, not paid yet
    PAID = "PAID"
    CLOSED = "CLOSED"  # closed unpaid (expired or cancelled): it can no longer be paid


@dataclass(frozen=True, slots=True)
class ProviderOrder:
    """Where the payer pays an order, and until when."""

    order_id: str
    pay_url: str
    expires_at: dt.datetime


@dataclass(frozen=True, slots=True)
class OrderReport:
    """What the provider says about one order, in a callback or in answer to a query."""

    order_id: str
    merchant_id: str
    state: OrderState
    amount: Decimal
    transaction_id: str | None = None  # the provider's reference of the money movement


class CallbackOutcome(enum.StrEnum):
    """What became of a callback; kept in ``payment_callbacks.outcome``."""

    SETTLED = "SETTLED"
    DUPLICATE = "DUPLICATE"  # the payment was settled already: nothing changed
    NOT_PAID = "NOT_PAID"  # a notice about an order that is not paid: nothing to do
    BAD_SIGNATURE = "BAD_SIGNATURE"
    STALE = "STALE"  # authentic, but its timestamp is outside the tolerance (a replay?)
    MALFORMED = "MALFORMED"
    MERCHANT_MISMATCH = "MERCHANT_MISMATCH"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"
    PAYMENT_FAILED = "PAYMENT_FAILED"  # paid at the provider, but we had closed the payment
    ERROR = "ERROR"  # our side failed; the provider retries

    @property
    def accepted(self) -> bool:
        """The provider may stop sending this notice."""
        return self in (CallbackOutcome.SETTLED, CallbackOutcome.DUPLICATE, CallbackOutcome.NOT_PAID)


class CallbackRejected(Exception):
    """A callback that is not believed: nothing in it is acted on."""

    def __init__(self, outcome: CallbackOutcome, message: str, order_id: str | None = None) -> None:
        super().__init__(message)
        self.outcome = outcome
        self.order_id = order_id


class ProviderError(Exception):
    """The provider could not be reached or refused the request."""


class PaymentProvider(Protocol):
    name: str
    merchant_id: str

    async def create_order(
        self, *, order_id: str, amount: Decimal, description: str, expires_at: dt.datetime
    ) -> ProviderOrder:
        """Open an order at the provider. The same ``order_id`` twice gives the same order."""
        ...

    def verify_callback(self, headers: Mapping[str, str], body: bytes, *, now: float) -> OrderReport:
        """The report in a callback, if it is authentic and fresh; else :class:`CallbackRejected`."""
        ...

    async def query_order(self, order_id: str) -> OrderReport | None:
        """The order's state at the provider; None if the provider never heard of it."""
        ...

    async def close_order(self, order_id: str) -> OrderReport | None:
        """Close the order if it is still open, so that it can no longer be paid; returns its
        state afterwards (PAID if it was paid first)."""
        ...


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Hex HMAC-SHA256 over ``{timestamp}.{raw body}``."""
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def _money(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    if not amount.is_finite() or amount != amount.quantize(Decimal("0.01")):
        raise ValueError(f"not an amount in cents: {value!r}")
    return amount


def parse_report(body: bytes) -> OrderReport:
    """The JSON body of a sandbox notice or order: ``{"merchantId", "orderId", "state",
    "amount": "223.90", "transactionId"}``. Amounts are strings (never floats)."""
    data = json.loads(body, parse_float=Decimal)
    if not isinstance(data, dict):
        raise ValueError("not an object")
    order_id, merchant_id, transaction_id = data.get("orderId"), data.get("merchantId"), data.get("transactionId")
    if not isinstance(order_id, str) or not isinstance(merchant_id, str):
        raise ValueError("orderId and merchantId are required")
    if transaction_id is not None and not isinstance(transaction_id, str):
        raise ValueError("transactionId must be a string")
    return OrderReport(
        order_id=order_id[:64],
        merchant_id=merchant_id,
        state=OrderState(data.get("state")),
        amount=_money(data.get("amount")),
        transaction_id=transaction_id[:128] if transaction_id else None,
    )


class SandboxProvider:
    """Our side of the sandbox: what an adapter for a real provider's API would be. The
    provider itself (:class:`~backend.billing.sandbox.SandboxGateway`) keeps its orders in
    Redis, outside our database, as a real one keeps them on its servers."""

    name = "sandbox"

    def __init__(self, gateway: SandboxGateway, *, merchant_id: str, secret: str) -> None:
        self.gateway = gateway
        self.merchant_id = merchant_id
        self._secret = secret

    async def create_order(
        self, *, order_id: str, amount: Decimal, description: str, expires_at: dt.datetime
    ) -> ProviderOrder:
        order = await self.gateway.open_order(
            order_id=order_id, amount=amount, description=description, expires_at=expires_at
        )
        return ProviderOrder(order_id=order.order_id, pay_url=order.pay_url, expires_at=order.expires_at)

    def verify_callback(self, headers: Mapping[str, str], body: bytes, *, now: float) -> OrderReport:
        lowered = {key.lower(): value for key, value in headers.items()}
        timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
        signature = lowered.get(SIGNATURE_HEADER.lower(), "")
        expected = sign(self._secret, timestamp, body)
        if not timestamp or not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
            raise CallbackRejected(CallbackOutcome.BAD_SIGNATURE, "The signature does not match.")
        # Authentic from here on; an old timestamp is a replay or a clock far off.
        try:
            report = parse_report(body)
        except ValueError as exc:
            raise CallbackRejected(CallbackOutcome.MALFORMED, f"Unreadable notice: {exc}") from exc
        if not timestamp.isdigit() or abs(now - int(timestamp)) > SIGNATURE_TOLERANCE_SECONDS:
            raise CallbackRejected(
                CallbackOutcome.STALE, "The timestamp is more than 300 s off.", order_id=report.order_id
            )
        return report

    async def query_order(self, order_id: str) -> OrderReport | None:
        from redis.exceptions import RedisError

        try:
            order = await self.gateway.order(order_id)
        except RedisError as exc:
            raise ProviderError(f"sandbox unreachable: {exc}") from exc
        return order.report() if order is not None else None

    async def close_order(self, order_id: str) -> OrderReport | None:
        order = await self.gateway.close(order_id)
        return order.report() if order is not None else None


class ProviderRegistry:
    """The configured providers by name, and the one new ONLINE payments go through."""

    def __init__(self, providers: Iterable[PaymentProvider], *, default: str | None) -> None:
        self._providers = {provider.name: provider for provider in providers}
        self._default = default

    def get(self, name: str) -> PaymentProvider | None:
        return self._providers.get(name)

    @property
    def default(self) -> PaymentProvider | None:
        return self._providers.get(self._default) if self._default else None

    @property
    def sandbox(self) -> SandboxProvider | None:
        provider = self._providers.get(SandboxProvider.name)
        return provider if isinstance(provider, SandboxProvider) else None


def build_providers(settings: Settings, redis: Redis) -> ProviderRegistry:
    from backend.billing.sandbox import SandboxGateway

    providers: list[PaymentProvider] = []
    if settings.online_provider == SandboxProvider.name:
        gateway = SandboxGateway(
            redis,
            merchant_id=settings.sandbox_merchant_id,
            secret=settings.sandbox_signing_secret,
            base_url=settings.base_url,
        )
        providers.append(
            SandboxProvider(gateway, merchant_id=settings.sandbox_merchant_id, secret=settings.sandbox_signing_secret)
        )
    return ProviderRegistry(providers, default=settings.online_provider)
