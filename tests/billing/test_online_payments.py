"""ONLINE payments through the sandbox provider: an owner paying their own bills, the signed
callback, reconciliation, and the payment history.

The sandbox keeps its orders in Redis (outside our database) and calls back over real HTTP:
a uvicorn server on a loopback port serves the test runtime, and the sandbox's URLs point
at it, so a callback travels the network as it would from a real provider.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import re
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
from billing_support import Ledger
from pydantic import ValidationError
from sqlalchemy import delete, func, select, text

from backend.accounts.models import User
from backend.app import create_app
from backend.audit.models import AuditEntry
from backend.billing.errors import BillingError, BillingErrorCode
from backend.billing.models import (
    Bill,
    BillLine,
    BillStatus,
    Payment,
    PaymentCallback,
    PaymentStatus,
    ReceiptCounter,
)
from backend.billing.online import reconcile_pending, start_online_payment
from backend.billing.providers import SIGNATURE_HEADER, TIMESTAMP_HEADER, OrderState, sign
from backend.billing.service import generate_bills
from backend.cli import sandbox_pay
from backend.db import to_global_id
from backend.notifications.models import Notification
from backend.people.models import Occupancy, OccupancyRole
from backend.settings import DEV_SANDBOX_SECRET, Settings
from schema.core.relay import decode_id
from workers.runtime import WorkerRuntime
from workers.settings import WorkerSettings
from workers.tasks import reconcile_online_payments

PAY = """
mutation($input: PayBillsInput!) {
  payBills(input: $input) {
    payment {
      id amount method status receiptNumber providerOrderId payUrl expiresAt settledAt unallocated
      allocations { amount }
    }
    bills { id status outstanding }
    errors { field code message }
  }
}
"""

PAYMENT = """
query($id: ID!) {
  node(id: $id) {
    ... on Payment {
      id status receiptNumber settledAt unallocated providerReference allocations { amount bill { id } }
    }
  }
}
"""

HISTORY = """
query($first: Int, $after: String) {
  viewer {
    payments(first: $first, after: $after) {
      edges { cursor node { id amount method status allocations { amount bill { period feeItem { name } } } } }
      pageInfo { hasNextPage endCursor }
    }
  }
}
"""

CALLBACK = "/payments/callback/sandbox"


# --- fixtures ----------------------------------------------------------------------------------


class _Server(uvicorn.Server):
    """uvicorn inside the test process: pytest keeps its own Ctrl-C handling."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def public_api(settings: Settings, runtime: Any) -> AsyncIterator[str]:
    """The test runtime on a real loopback port; the sandbox's pay and callback URLs point here."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    host, port = sock.getsockname()
    server = _Server(uvicorn.Config(create_app(settings, runtime=runtime), lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.02)
    gateway = runtime.payment_providers.sandbox.gateway
    previous, gateway.base_url = gateway.base_url, f"http://{host}:{port}"
    yield gateway.base_url
    gateway.base_url = previous
    server.should_exit = True
    await asyncio.wait_for(task, timeout=10)
    sock.close()


@dataclass
class Home:
    owner_id: int
    flat: list[Bill]  # owner.a1's flat 1-1-101 of the ledger: property fee, October and November
    neighbour: list[Bill]  # the flat next door (1-1-102), someone else's


@pytest_asyncio.fixture(loop_scope="session")
async def home(runtime: Any, ledger: Ledger, public_api: str) -> AsyncIterator[Home]:
    """owner.a1 also owns the ledger's flat 1-1-101; October and November 2026 are billed
    (property fee 223.90 a month, due on the 28th)."""
    async with runtime.sessionmaker() as session, session.begin():
        owner = await session.scalar(select(User).where(User.username == "owner.a1"))
        assert owner is not None
        assert owner.person_id is not None
        occupancy = Occupancy(
            unit_id=ledger.units[0].id,
            person_id=owner.person_id,
            role=OccupancyRole.OWNER,
            start_date=dt.date(2020, 1, 1),
        )
        session.add(occupancy)
        for month in (dt.date(2026, 10, 1), dt.date(2026, 11, 1)):
            await generate_bills(session=session, estate=ledger.estate, month=month, actor_id=None, request_id=None)
    async with runtime.sessionmaker() as session:
        bills = (
            await session.scalars(
                select(Bill)
                .where(Bill.fee_item_id == ledger.items["PF"].id)
                .order_by(Bill.unit_id, Bill.due_date, Bill.id)
            )
        ).all()
    yield Home(
        owner_id=owner.id,
        flat=[b for b in bills if b.unit_id == ledger.units[0].id],
        neighbour=[b for b in bills if b.unit_id == ledger.units[1].id],
    )
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(delete(Occupancy).where(Occupancy.id == occupancy.id))


# --- helpers -----------------------------------------------------------------------------------


def _pay_input(bills: list[Bill], amount: str, *, method: str = "ONLINE", key: str | None = None) -> dict[str, Any]:
    return {
        "input": {
            "billIds": [to_global_id("Bill", b.id) for b in bills],
            "amount": amount,
            "method": method,
            "idempotencyKey": key or uuid.uuid4().hex,
        }
    }


async def _start(client: Any, bills: list[Bill], amount: str) -> dict[str, Any]:
    result = (await client.data(PAY, _pay_input(bills, amount)))["payBills"]
    assert result["errors"] == [], result
    payment: dict[str, Any] = result["payment"]
    return payment


async def _stored(runtime: Any, payment: dict[str, Any] | int) -> Payment:
    pk = payment if isinstance(payment, int) else decode_id(payment["id"], "Payment")
    async with runtime.sessionmaker() as session:
        stored = await session.get(Payment, pk)
    assert stored is not None
    return stored


async def _lines(runtime: Any, payment_id: int) -> list[tuple[int, Decimal]]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            select(BillLine.bill_id, BillLine.amount).where(BillLine.payment_id == payment_id).order_by(BillLine.id)
        )
        return [(bill_id, amount) for bill_id, amount in rows.all()]


async def _bill(runtime: Any, bill: Bill) -> tuple[BillStatus, Decimal]:
    async with runtime.sessionmaker() as session:
        fresh = await session.get(Bill, bill.id)
    assert fresh is not None
    return fresh.status, fresh.outstanding


async def _outcomes(runtime: Any, **where: Any) -> list[str]:
    async with runtime.sessionmaker() as session:
        statement = select(PaymentCallback.outcome).order_by(PaymentCallback.outcome)
        if "marker" in where:
            statement = statement.where(PaymentCallback.body.contains(where["marker"]))
        if "order_id" in where:
            statement = statement.where(PaymentCallback.provider_order_id == where["order_id"])
        return list((await session.scalars(statement)).all())


async def _audits(runtime: Any, action: str, payment_id: int) -> list[AuditEntry]:
    async with runtime.sessionmaker() as session:
        rows = await session.scalars(
            select(AuditEntry).where(AuditEntry.action == action, AuditEntry.target_id == str(payment_id))
        )
        return list(rows.all())


async def _receipts_issued(runtime: Any, ledger: Ledger) -> int:
    company_id = int(ledger.estate.org_path.split("/")[1])
    async with runtime.sessionmaker() as session:
        return int(
            await session.scalar(select(ReceiptCounter.next_number).where(ReceiptCounter.company_id == company_id)) or 0
        )


async def _sandbox_orders(runtime: Any) -> int:
    return len(await runtime.redis.keys("sandbox:order:*"))


def _notice(order_id: str, amount: str, *, merchant: str, transaction_id: str) -> bytes:
    return json.dumps(
        {
            "merchantId": merchant,
            "orderId": order_id,
            "transactionId": transaction_id,
            "state": "PAID",
            "amount": amount,
        }
    ).encode()


def _signed_headers(secret: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, str(timestamp), body),
    }


# --- an owner pays ------------------------------------------------------------------------------


async def test_an_owner_pays_an_unpaid_bill_online_end_to_end(
    as_user: Any, runtime: Any, home: Home, public_api: str
) -> None:
    # given owner.a1's unpaid November bill
    owner = await as_user("owner.a1")
    november = home.flat[1]
    unpaid = await owner.data("query { viewer { units { bills(filter: {status: UNPAID}) { id amount } } } }")
    assert {"id": to_global_id("Bill", november.id), "amount": "223.90"} in [
        b for unit in unpaid["viewer"]["units"] for b in unit["bills"]
    ]
    # when they pay it online
    started = (await owner.data(PAY, _pay_input([november], "223.90")))["payBills"]
    # then a pending payment comes back with where to pay, and nothing is booked yet
    payment = started["payment"]
    assert started["errors"] == []
    assert (payment["status"], payment["method"], payment["receiptNumber"], payment["allocations"]) == (
        "PENDING", "ONLINE", None, [],
    )  # fmt: skip
    assert payment["payUrl"] == f"{public_api}/payments/sandbox/{payment['providerOrderId']}"
    assert dt.datetime.fromisoformat(payment["expiresAt"]) > dt.datetime.now(dt.UTC) + dt.timedelta(minutes=25)
    assert started["bills"] == [{"id": to_global_id("Bill", november.id), "status": "UNPAID", "outstanding": "223.90"}]
    stored = await _stored(runtime, payment)
    assert await _lines(runtime, stored.id) == []

    # when they open the provider's page and pay there
    async with httpx.AsyncClient(timeout=10) as browser:
        page = await browser.get(payment["payUrl"])
        paid = await browser.post(payment["payUrl"], data={"callback": "1"})
    # then the provider's callback settled the payment, with a receipt, and the bill is paid
    assert page.status_code == 200
    assert "¥223.90" in page.text
    assert "PENDING" in page.text
    assert "The merchant answered the callback with HTTP 200" in paid.text
    history = await owner.data(HISTORY, {"first": 5})
    newest = history["viewer"]["payments"]["edges"][0]["node"]
    assert (newest["id"], newest["status"]) == (payment["id"], "SETTLED")
    seen = (await owner.data(PAYMENT, {"id": payment["id"]}))["node"]
    assert re.fullmatch(r"RDEMO-\d{8}", seen["receiptNumber"])
    assert seen["settledAt"] is not None
    assert seen["unallocated"] == "0.00"
    assert seen["providerReference"] is None  # finance only
    assert seen["allocations"] == [{"amount": "223.90", "bill": {"id": to_global_id("Bill", november.id)}}]
    assert await _bill(runtime, november) == (BillStatus.PAID, Decimal("0.00"))
    assert await _lines(runtime, stored.id) == [(november.id, Decimal("223.90"))]
    assert await _outcomes(runtime, order_id=payment["providerOrderId"]) == ["SETTLED"]
    assert len(await _audits(runtime, "payment.settle", stored.id)) == 1
    async with runtime.sessionmaker() as session:
        told = (
            await session.scalars(select(Notification).where(Notification.dedup_key == f"payment-settled:{stored.id}"))
        ).all()
    assert [(n.user_id, n.kind, n.data["receiptNumber"]) for n in told] == [
        (home.owner_id, "payment_settled", seen["receiptNumber"])
    ]


async def test_the_same_key_answers_the_same_pending_payment(as_user: Any, runtime: Any, home: Home) -> None:
    # given
    owner = await as_user("owner.a1")
    key = uuid.uuid4().hex
    orders_before = await _sandbox_orders(runtime)
    # when the app sends its request twice (a retry), then once more with another amount
    first = (await owner.data(PAY, _pay_input([home.flat[1]], "223.90", key=key)))["payBills"]
    again = (await owner.data(PAY, _pay_input([home.flat[1]], "223.90", key=key)))["payBills"]
    other = (await owner.data(PAY, _pay_input([home.flat[1]], "100.00", key=key)))["payBills"]
    # then one payment and one order at the provider
    assert again["payment"] == first["payment"]
    assert first["payment"]["status"] == "PENDING"
    assert await _sandbox_orders(runtime) == orders_before + 1
    assert [e["code"] for e in other["errors"]] == ["IDEMPOTENCY_KEY_REUSED"]


async def test_a_bill_with_an_open_order_takes_no_second_one_until_it_expires(
    as_user: Any, runtime: Any, home: Home
) -> None:
    # given owner.a1 opened an order for November
    owner = await as_user("owner.a1")
    first = await _start(owner, [home.flat[1]], "223.90")
    orders_before = await _sandbox_orders(runtime)
    # when a second order (another key, from the family's other phone) covers November too
    second = (await owner.data(PAY, _pay_input([home.flat[0], home.flat[1]], "447.80")))["payBills"]
    # then it is refused and nothing is written: no payment, no order at the provider
    assert [e["code"] for e in second["errors"]] == ["PAYMENT_IN_PROGRESS"]
    assert second["payment"] is None
    assert await _sandbox_orders(runtime) == orders_before
    async with runtime.sessionmaker() as session:
        pending = await session.scalar(
            select(func.count()).where(Payment.status == PaymentStatus.PENDING, Payment.bill_ids.any(home.flat[1].id))
        )
    assert pending == 1
    # and once the first order has expired, a new one may be opened
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            text("UPDATE payments SET expires_at = now() - interval '1 minute' WHERE id = :id"),
            {"id": decode_id(first["id"], "Payment")},
        )
    third = (await owner.data(PAY, _pay_input([home.flat[1]], "223.90")))["payBills"]
    assert third["errors"] == []
    assert third["payment"]["status"] == "PENDING"


async def test_staff_may_start_an_online_payment_on_an_owners_behalf(as_user: Any, runtime: Any, home: Home) -> None:
    # when customer service starts one at the counter for owner.a1
    payment = await _start(await as_user("cs.a"), [home.flat[0]], "223.90")
    # then it is pending at the provider, and the owner sees it in their history
    assert payment["status"] == "PENDING"
    order = await runtime.payment_providers.sandbox.gateway.order(payment["providerOrderId"])
    assert (order.state, order.amount) == (OrderState.PENDING, Decimal("223.90"))
    history = await (await as_user("owner.a1")).data(HISTORY, {"first": 1})
    assert history["viewer"]["payments"]["edges"][0]["node"]["id"] == payment["id"]


async def test_an_owner_cannot_pay_another_units_bill(as_user: Any, runtime: Any, home: Home) -> None:
    # given the neighbour's bill, and a bill id that does not exist
    owner = await as_user("owner.a1")
    key, request_id = uuid.uuid4().hex, uuid.uuid4().hex
    orders_before = await _sandbox_orders(runtime)
    missing = Bill(id=2_000_000_000)
    # when
    neighbours = await owner.post(
        PAY, _pay_input([home.neighbour[1]], "300.00", key=key), **{"x-request-id": request_id}
    )
    nowhere = await owner.post(PAY, _pay_input([missing], "300.00"))
    # then the answer is exactly that of a missing bill, and nothing is written anywhere
    assert neighbours.json() == nowhere.json()
    assert [e["code"] for e in neighbours.json()["data"]["payBills"]["errors"]] == ["NOT_FOUND"]
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).where(Payment.idempotency_key == key)) == 0
        assert await session.scalar(select(func.count()).where(AuditEntry.request_id == request_id)) == 0
    assert await _sandbox_orders(runtime) == orders_before


async def test_an_owner_cannot_pay_at_the_counter(as_user: Any, runtime: Any, home: Home) -> None:
    # given
    owner = await as_user("owner.a1")
    key = uuid.uuid4().hex
    # when owner.a1 records cash for their own bill
    body = await owner.execute(PAY, _pay_input([home.flat[1]], "223.90", method="CASH", key=key))
    # then
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).where(Payment.idempotency_key == key)) == 0
        assert await session.scalar(select(func.count()).where(BillLine.bill_id == home.flat[1].id)) == 0


async def test_without_a_provider_online_payment_is_unavailable(runtime: Any, home: Home) -> None:
    # given
    key = uuid.uuid4().hex
    # when
    with pytest.raises(BillingError) as refused:
        async with runtime.sessionmaker() as session, session.begin():
            await start_online_payment(
                session=session, provider=None, bill_ids=[home.flat[1].id], amount=Decimal("223.90"),
                idempotency_key=key, order_ttl=dt.timedelta(minutes=30), actor_id=home.owner_id, request_id=None,
            )  # fmt: skip
    # then
    assert refused.value.code is BillingErrorCode.PROVIDER_UNAVAILABLE
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).where(Payment.idempotency_key == key)) == 0


# --- the callback -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "status", "outcome"),
    [
        ("bad_signature", 401, "BAD_SIGNATURE"),
        ("stale_timestamp", 401, "STALE"),
        ("wrong_amount", 409, "AMOUNT_MISMATCH"),
        ("wrong_merchant", 400, "MERCHANT_MISMATCH"),
        ("unknown_order", 404, "UNKNOWN_ORDER"),
    ],
)
async def test_a_callback_that_is_not_believed_settles_nothing(
    http: httpx.AsyncClient,
    as_user: Any,
    runtime: Any,
    settings: Settings,
    home: Home,
    case: str,
    status: int,
    outcome: str,
) -> None:
    # given a pending payment of 223.90, paid at the provider
    payment = await _start(await as_user("owner.a1"), [home.flat[1]], "223.90")
    await runtime.payment_providers.sandbox.gateway.pay(payment["providerOrderId"])
    marker = f"TX{uuid.uuid4().hex}"
    body = _notice(
        f"WY{uuid.uuid4().hex[:20]}" if case == "unknown_order" else payment["providerOrderId"],
        "22.39" if case == "wrong_amount" else "223.90",
        merchant="SOMEONE-ELSE" if case == "wrong_merchant" else settings.sandbox_merchant_id,
        transaction_id=marker,
    )
    secret = "not-the-shared-secret" if case == "bad_signature" else settings.sandbox_signing_secret
    timestamp = int(time.time()) - (301 if case == "stale_timestamp" else 0)
    # when
    response = await http.post(CALLBACK, content=body, headers=_signed_headers(secret, timestamp, body))
    # then refused, kept with its outcome, and nothing settled
    assert response.status_code == status
    assert response.json() == {"code": "FAIL", "message": outcome}
    assert await _outcomes(runtime, marker=marker) == [outcome]
    stored = await _stored(runtime, payment)
    assert (stored.status, stored.receipt_number, stored.provider_reference) == (PaymentStatus.PENDING, None, None)
    assert await _lines(runtime, stored.id) == []
    assert await _bill(runtime, home.flat[1]) == (BillStatus.UNPAID, Decimal("223.90"))


async def test_a_tampered_body_fails_its_signature(
    http: httpx.AsyncClient, as_user: Any, runtime: Any, home: Home
) -> None:
    # given a genuine callback for 22.39 whose amount is changed on the way to 223.90
    payment = await _start(await as_user("owner.a1"), [home.flat[1]], "223.90")
    gateway = runtime.payment_providers.sandbox.gateway
    headers, body = gateway.signed(await gateway.pay(payment["providerOrderId"]))
    tampered = body.replace(b'"amount":"223.90"', b'"amount":"22.39"')
    assert tampered != body
    # when
    response = await http.post(CALLBACK, content=tampered, headers=headers)
    # then
    assert response.status_code == 401
    assert (await _stored(runtime, payment)).status is PaymentStatus.PENDING


async def test_a_callback_for_a_provider_we_do_not_use_is_not_found(http: httpx.AsyncClient) -> None:
    response = await http.post("/payments/callback/paypal", content=b"{}")
    assert (response.status_code, response.json()) == (404, {"code": "FAIL", "message": "UNKNOWN_PROVIDER"})


async def test_five_identical_callbacks_at_once_settle_once(
    http: httpx.AsyncClient, as_user: Any, runtime: Any, ledger: Ledger, home: Home
) -> None:
    # given a pending payment over both of the flat's bills, paid at the provider
    payment = await _start(await as_user("owner.a1"), home.flat, "447.80")
    gateway = runtime.payment_providers.sandbox.gateway
    order = await gateway.pay(payment["providerOrderId"])
    headers, body = gateway.signed(order)
    receipts_before = await _receipts_issued(runtime, ledger)
    # when the provider sends its callback five times at once
    responses = await asyncio.gather(*(http.post(CALLBACK, content=body, headers=headers) for _ in range(5)))
    # then every one is acknowledged, and the money is booked once
    assert [(r.status_code, r.json()) for r in responses] == [(200, {"code": "SUCCESS"})] * 5
    assert await _outcomes(runtime, order_id=order.order_id) == ["DUPLICATE"] * 4 + ["SETTLED"]
    stored = await _stored(runtime, payment)
    assert (stored.status, stored.provider_reference) == (PaymentStatus.SETTLED, order.transaction_id)
    assert stored.receipt_number is not None
    assert await _lines(runtime, stored.id) == [
        (home.flat[0].id, Decimal("223.90")),
        (home.flat[1].id, Decimal("223.90")),
    ]
    assert await _receipts_issued(runtime, ledger) == receipts_before + 1
    assert len(await _audits(runtime, "payment.settle", stored.id)) == 1
    async with runtime.sessionmaker() as session:
        told = await session.scalar(
            select(func.count()).where(Notification.dedup_key == f"payment-settled:{stored.id}")
        )
    assert told == 1


async def test_money_for_a_bill_paid_meanwhile_is_kept_unallocated(
    as_user: Any, runtime: Any, settings: Settings, home: Home
) -> None:
    # given the owner's online payment of November, and 100.00 of it paid at the counter meanwhile
    payment = await _start(await as_user("owner.a1"), [home.flat[1]], "223.90")
    cash = (await (await as_user("cs.a")).data(PAY, _pay_input([home.flat[1]], "100.00", method="CASH")))["payBills"]
    assert cash["errors"] == []
    # when the provider confirms the payment (`wuye sandbox-pay`)
    printed = await sandbox_pay(settings, payment["providerOrderId"], callback=True)
    # then it settles: 123.90 to the bill, 100.00 left for finance to refund, audited
    assert "HTTP 200" in printed
    seen = (await (await as_user("finance.north")).data(PAYMENT, {"id": payment["id"]}))["node"]
    assert (seen["status"], seen["unallocated"]) == ("SETTLED", "100.00")
    assert seen["allocations"] == [{"amount": "123.90", "bill": {"id": to_global_id("Bill", home.flat[1].id)}}]
    assert await _bill(runtime, home.flat[1]) == (BillStatus.PAID, Decimal("0.00"))
    (entry,) = await _audits(runtime, "payment.unallocated", decode_id(payment["id"], "Payment"))
    assert entry.detail["amount"] == "100.00"


# --- reconciliation -----------------------------------------------------------------------------


async def _pending(runtime: Any, home: Home, bill: Bill, ttl: dt.timedelta) -> Payment:
    async with runtime.sessionmaker() as session, session.begin():
        result = await start_online_payment(
            session=session, provider=runtime.payment_providers.default, bill_ids=[bill.id], amount=Decimal("223.90"),
            idempotency_key=uuid.uuid4().hex, order_ttl=ttl, actor_id=home.owner_id, request_id=None,
        )  # fmt: skip
    return result.payment


async def _snapshot(runtime: Any, payments: list[Payment], bills: list[Bill]) -> list[Any]:
    state: list[Any] = []
    for payment in payments:
        stored = await _stored(runtime, payment.id)
        state.append(
            (stored.status, stored.receipt_number, stored.provider_reference, await _lines(runtime, stored.id))
        )
    return state + [await _bill(runtime, bill) for bill in bills]


async def test_reconciliation_settles_a_lost_callback_and_fails_an_expired_order(
    runtime: Any, settings: Settings, home: Home
) -> None:
    # given two pending payments: one paid at the provider whose callback never came, and
    # one never paid whose order expired
    lost = await _pending(runtime, home, home.flat[0], dt.timedelta(minutes=30))
    expired = await _pending(runtime, home, home.flat[1], dt.timedelta(seconds=1))
    printed = await sandbox_pay(settings, lost.provider_order_id or "", callback=False)
    assert "no callback sent" in printed
    gateway = runtime.payment_providers.sandbox.gateway
    transaction_id = (await gateway.order(lost.provider_order_id)).transaction_id
    await asyncio.sleep(1.1)
    worker = WorkerRuntime.build(settings.model_copy(update={"payment_reconcile_after_seconds": 0}))
    try:
        # when the reconciliation job runs, and runs again
        first = await reconcile_online_payments({"runtime": worker})
        after_first = await _snapshot(runtime, [lost, expired], home.flat)
        second = await reconcile_online_payments({"runtime": worker})
    finally:
        await worker.close()
    # then the paid one settled, the expired one failed (its order closed), and the second run changed nothing
    assert (first["settled"], first["failed"]) == (1, 1)
    assert (second["settled"], second["failed"]) == (0, 0)
    assert await _snapshot(runtime, [lost, expired], home.flat) == after_first
    (settled, failed, october, november) = after_first
    assert settled[0] is PaymentStatus.SETTLED
    assert re.fullmatch(r"RDEMO-\d{8}", settled[1])
    assert settled[2] == transaction_id
    assert settled[3] == [(home.flat[0].id, Decimal("223.90"))]
    assert failed == (PaymentStatus.FAILED, None, None, [])
    assert (october, november) == ((BillStatus.PAID, Decimal("0.00")), (BillStatus.UNPAID, Decimal("223.90")))
    assert (await gateway.order(expired.provider_order_id)).state is OrderState.CLOSED
    assert len(await _audits(runtime, "payment.fail", expired.id)) == 1


async def test_two_reconcilers_at_once_settle_a_payment_once(runtime: Any, ledger: Ledger, home: Home) -> None:
    # given a payment paid at the provider whose callback never came
    lost = await _pending(runtime, home, home.flat[0], dt.timedelta(minutes=30))
    await runtime.payment_providers.sandbox.gateway.pay(lost.provider_order_id)
    receipts_before = await _receipts_issued(runtime, ledger)
    # when two workers reconcile at the same moment
    reports = await asyncio.gather(
        *(
            reconcile_pending(
                sessionmaker=runtime.sessionmaker,
                providers=runtime.payment_providers,
                older_than=dt.timedelta(0),
                request_id="test:reconcile",
            )
            for _ in range(2)
        )
    )
    # then
    assert sum(r.settled for r in reports) == 1
    assert await _lines(runtime, lost.id) == [(home.flat[0].id, Decimal("223.90"))]
    assert await _receipts_issued(runtime, ledger) == receipts_before + 1


def test_reconciliation_runs_every_five_minutes_once_across_workers() -> None:
    (job,) = [j for j in WorkerSettings.cron_jobs if j.name == "cron:reconcile_online_payments"]
    assert (job.minute, job.unique) == (set(range(2, 60, 5)), True)


# --- who sees what ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("username", "sees_reference"),
    [
        ("finance.north", True),
        ("admin", True),  # admin holds every permission (as for refunds)
        ("manager.north", False),  # denied by policy, like refunds
        ("cs.a", False),
        ("owner.a1", False),
    ],
)
async def test_the_providers_reference_is_for_finance(
    as_user: Any, runtime: Any, settings: Settings, home: Home, username: str, sees_reference: bool
) -> None:
    # given a settled online payment
    payment = await _start(await as_user("owner.a1"), [home.flat[1]], "223.90")
    await sandbox_pay(settings, payment["providerOrderId"], callback=True)
    reference = (await _stored(runtime, payment)).provider_reference
    assert reference is not None
    assert reference.startswith("SBX")
    # when
    seen = (await (await as_user(username)).data(PAYMENT, {"id": payment["id"]}))["node"]
    # then
    assert seen["status"] == "SETTLED"
    assert seen["providerReference"] == (reference if sees_reference else None)


async def test_an_owners_history_lists_only_their_payments_newest_first(as_user: Any, runtime: Any, home: Home) -> None:
    # given owner.a1 paying online, customer service starting one for them, and cash taken
    # for the neighbour's flat
    own = await _start(await as_user("owner.a1"), [home.flat[1]], "100.00")
    on_behalf = await _start(await as_user("cs.a"), [home.flat[0]], "223.90")
    neighbour = await _start(await as_user("cs.a"), [home.neighbour[0]], "300.00")
    # when
    owner = await as_user("owner.a1")
    page = (await owner.data(HISTORY, {"first": 1}))["viewer"]["payments"]
    next_page = (await owner.data(HISTORY, {"first": 1, "after": page["pageInfo"]["endCursor"]}))["viewer"]["payments"]
    everything = (await owner.data(HISTORY, {"first": 100}))["viewer"]["payments"]["edges"]
    other_owner = (await (await as_user("owner.a2")).data(HISTORY, {"first": 100}))["viewer"]["payments"]["edges"]
    # then
    assert [e["node"]["id"] for e in page["edges"] + next_page["edges"]] == [on_behalf["id"], own["id"]]
    ids = [e["node"]["id"] for e in everything]
    assert neighbour["id"] not in ids
    assert ids == sorted(ids, key=lambda gid: -decode_id(gid, "Payment"))
    assert not {own["id"], on_behalf["id"]} & {e["node"]["id"] for e in other_owner}
    async with runtime.sessionmaker() as session:
        unit_ids = set(
            await session.scalars(
                select(Occupancy.unit_id).where(
                    Occupancy.person_id == select(User.person_id).where(User.id == home.owner_id).scalar_subquery(),
                    Occupancy.end_date.is_(None),
                )
            )
        )
        for gid in ids:
            payment = await session.get(Payment, decode_id(gid, "Payment"))
            assert payment is not None
            units = set(await session.scalars(select(Bill.unit_id).where(Bill.id.in_(payment.bill_ids))))
            assert payment.created_by_id == home.owner_id or units & unit_ids, gid


async def test_the_history_loads_in_a_fixed_number_of_statements(as_user: Any, count_statements: Any) -> None:
    # given owner.a1, whose demo history has many payments
    owner = await as_user("owner.a1")
    await owner.data(HISTORY, {"first": 1})
    # when
    count_statements.statements.clear()
    one = await owner.data(HISTORY, {"first": 1})
    one_count = count_statements.count
    count_statements.statements.clear()
    many = await owner.data(HISTORY, {"first": 10})
    # then
    assert len(many["viewer"]["payments"]["edges"]) == 10
    assert all(e["node"]["allocations"] for e in many["viewer"]["payments"]["edges"])
    assert len(one["viewer"]["payments"]["edges"]) == 1
    assert count_statements.count == one_count


# --- settings and pages -------------------------------------------------------------------------


def test_production_refuses_the_development_sandbox_secret() -> None:
    production = {"env": "production", "secret_key": "production-secret-key-long-enough-for-hs256"}
    with pytest.raises(ValidationError, match="WUYE_SANDBOX_SECRET"):
        Settings(**production, payment_provider="sandbox")
    with pytest.raises(ValidationError, match="WUYE_SANDBOX_SECRET"):
        Settings(**production, payment_provider="sandbox", sandbox_secret=DEV_SANDBOX_SECRET)
    assert (
        Settings(**production, payment_provider="sandbox", sandbox_secret="from-the-vault").online_provider == "sandbox"
    )
    assert Settings(**production).online_provider is None  # no online payment unless configured
    assert Settings().online_provider == "sandbox"


async def test_the_sandbox_pay_page_is_never_served_in_production(
    http: httpx.AsyncClient, runtime: Any, settings: Settings, as_user: Any, home: Home
) -> None:
    # given an open sandbox order
    payment = await _start(await as_user("owner.a1"), [home.flat[1]], "223.90")
    path = f"/payments/sandbox/{payment['providerOrderId']}"
    production = Settings.model_validate(
        {
            **settings.model_dump(),
            "env": "production",
            "payment_provider": "sandbox",
            "sandbox_secret": "from-the-vault",
        }
    )
    transport = httpx.ASGITransport(app=create_app(production, runtime=runtime))
    # when
    async with httpx.AsyncClient(transport=transport, base_url="http://wuye.test") as client:
        refused = await client.post(path, data={"callback": "0"})
    served = await http.get(path)
    # then
    assert refused.status_code == 404
    assert served.status_code == 200
    order = await runtime.payment_providers.sandbox.gateway.order(payment["providerOrderId"])
    assert order.state is OrderState.PENDING
