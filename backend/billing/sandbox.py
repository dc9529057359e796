"""The sandbox payment provider itself: a stand-in for WeChat Pay or Alipay that behaves
like one. It keeps its orders where a real provider would — outside our database, in
Redis under ``sandbox:`` — takes payment on its own pay page (or `wuye sandbox-pay`), then
notifies the merchant's callback URL with a signed POST, and answers queries.

Nothing here touches our database: the payment service learns about a payment only from
the callback or a query, exactly as with a real provider.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from dataclasses import dataclass
from decimal import Decimal

import httpx
from redis.asyncio import Redis
from redis.exceptions import RedisError

from backend.billing.providers import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    OrderReport,
    OrderState,
    ProviderError,
    sign,
)

KEY_PREFIX = "sandbox:order:"
KEEP_AFTER_EXPIRY = dt.timedelta(days=7)

# Change an order's state atomically. KEYS[1]: the order; ARGV: from-state, to-state, now
# (epoch seconds), a condition on the expiry ("unexpired", "expired" or "any"), then
# field/value pairs to set. Returns the state afterwards, or nil for an unknown order.
_TRANSITION = """
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return nil end
if state ~= ARGV[1] then return state end
local expires = tonumber(redis.call('HGET', KEYS[1], 'expires_at'))
local now = tonumber(ARGV[3])
if ARGV[4] == 'unexpired' and expires <= now then return state end
if ARGV[4] == 'expired' and expires > now then return state end
redis.call('HSET', KEYS[1], 'state', ARGV[2], unpack(ARGV, 5))
return ARGV[2]
"""

# Open an order once: a second open of the same order id leaves the first as it was.
_OPEN = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIREAT', KEYS[1], ARGV[1])
return 1
"""


class SandboxError(Exception):
    """The sandbox refuses: an unknown order, a closed one, an order id reused."""


@dataclass(frozen=True, slots=True)
class SandboxOrder:
    order_id: str
    merchant_id: str
    amount: Decimal
    description: str
    state: OrderState
    expires_at: dt.datetime
    notify_url: str
    pay_url: str
    transaction_id: str | None
    paid_at: dt.datetime | None

    def report(self) -> OrderReport:
        return OrderReport(
            order_id=self.order_id,
            merchant_id=self.merchant_id,
            state=self.state,
            amount=self.amount,
            transaction_id=self.transaction_id,
        )

    def notice(self) -> bytes:
        """The body of the callback about this order."""
        return json.dumps(
            {
                "merchantId": self.merchant_id,
                "orderId": self.order_id,
                "transactionId": self.transaction_id,
                "state": self.state.value,
                "amount": str(self.amount),
                "paidAt": self.paid_at.isoformat() if self.paid_at else None,
            },
            separators=(",", ":"),
        ).encode()


class SandboxGateway:
    def __init__(
        self,
        redis: Redis,
        *,
        merchant_id: str,
        secret: str,
        base_url: str,
        http: httpx.AsyncClient | None = None,
    ) -> None:
        self.redis = redis
        self.merchant_id = merchant_id
        self._secret = secret
        # Where our API is reached: the pay page is served there, callbacks go there.
        self.base_url = base_url.rstrip("/")
        self.http = http
        self._transition = redis.register_script(_TRANSITION)
        self._open = redis.register_script(_OPEN)

    @staticmethod
    def key(order_id: str) -> str:
        return f"{KEY_PREFIX}{order_id}"

    async def open_order(
        self, *, order_id: str, amount: Decimal, description: str, expires_at: dt.datetime
    ) -> SandboxOrder:
        fields = {
            "merchant_id": self.merchant_id,
            "amount": str(amount),
            "description": description,
            "state": OrderState.PENDING.value,
            "expires_at": f"{expires_at.timestamp():.3f}",
            "notify_url": f"{self.base_url}/payments/callback/sandbox",
            "pay_url": f"{self.base_url}/payments/sandbox/{order_id}",
        }
        keep_until = int((expires_at + KEEP_AFTER_EXPIRY).timestamp())
        try:
            await self._open(keys=[self.key(order_id)], args=[keep_until, *_pairs(fields)])
            order = await self.order(order_id)
        except RedisError as exc:
            raise ProviderError(f"sandbox unreachable: {exc}") from exc
        if order is None or order.amount != amount:
            raise ProviderError(f"order {order_id} exists with another amount")
        return order

    async def order(self, order_id: str, *, now: float | None = None) -> SandboxOrder | None:
        """The order as the provider sees it; an open order past its expiry is closed."""
        now = time.time() if now is None else now
        await self._transition(
            keys=[self.key(order_id)], args=[OrderState.PENDING.value, OrderState.CLOSED.value, now, "expired"]
        )
        raw = await self.redis.hgetall(self.key(order_id))  # type: ignore[misc]  # redis-py's stubs
        if not raw:
            return None
        fields = {k.decode(): v.decode() for k, v in raw.items()}
        return SandboxOrder(
            order_id=order_id,
            merchant_id=fields["merchant_id"],
            amount=Decimal(fields["amount"]),
            description=fields["description"],
            state=OrderState(fields["state"]),
            expires_at=dt.datetime.fromtimestamp(float(fields["expires_at"]), dt.UTC),
            notify_url=fields["notify_url"],
            pay_url=fields["pay_url"],
            transaction_id=fields.get("transaction_id"),
            paid_at=dt.datetime.fromisoformat(fields["paid_at"]) if "paid_at" in fields else None,
        )

    async def pay(self, order_id: str) -> SandboxOrder:
        """The payer pays: an open, unexpired order becomes PAID with a transaction id. Paying
        a paid order again changes nothing (its callback can be sent again)."""
        now = time.time()
        paid_at = dt.datetime.fromtimestamp(now, dt.UTC)
        transaction_id = f"SBX{paid_at:%Y%m%d%H%M%S}{secrets.token_hex(6).upper()}"
        state = await self._transition(
            keys=[self.key(order_id)],
            args=[
                OrderState.PENDING.value,
                OrderState.PAID.value,
                now,
                "unexpired",
                *_pairs({"transaction_id": transaction_id, "paid_at": paid_at.isoformat()}),
            ],
        )
        order = await self.order(order_id)
        if state is None or order is None:
            raise SandboxError(f"No order {order_id}.")
        if order.state is not OrderState.PAID:
            raise SandboxError(f"Order {order_id} is {order.state.value.lower()}: it cannot be paid.")
        return order

    async def close(self, order_id: str) -> SandboxOrder | None:
        """The merchant closes an open order (expired on its side): it can no longer be paid."""
        try:
            await self._transition(
                keys=[self.key(order_id)], args=[OrderState.PENDING.value, OrderState.CLOSED.value, time.time(), "any"]
            )
            return await self.order(order_id)
        except RedisError as exc:
            raise ProviderError(f"sandbox unreachable: {exc}") from exc

    def signed(self, order: SandboxOrder, *, now: float | None = None) -> tuple[dict[str, str], bytes]:
        """The callback about ``order``: headers and raw body, signed as the provider signs."""
        body = order.notice()
        timestamp = str(int(time.time() if now is None else now))
        headers = {
            "content-type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self._secret, timestamp, body),
        }
        return headers, body

    async def send_callback(self, order: SandboxOrder) -> int:
        """POST the signed callback to the order's notify URL; returns the HTTP status."""
        headers, body = self.signed(order)
        try:
            if self.http is not None:
                response = await self.http.post(order.notify_url, content=body, headers=headers)
            else:
                async with httpx.AsyncClient(timeout=10.0) as client:
                    response = await client.post(order.notify_url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise SandboxError(f"The callback to {order.notify_url} failed: {exc}") from exc
        return response.status_code


def _pairs(fields: dict[str, str]) -> list[str]:
    return [item for pair in fields.items() for item in pair]
