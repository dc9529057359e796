"""The owner's repair end to end over HTTP: owner.a1 reports a leak → cs.a assigns tech.a →
tech.a starts and resolves it with charges → owner.a1 sees the REPAIR bill with their bills,
pays it online through the sandbox provider (a real callback to a real server) → rates."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest_asyncio
import uvicorn
from sqlalchemy import select
from tickets_support import ASSIGN, RATE, RESOLVE, START, SUBMIT, Demo

from backend.app import create_app
from backend.billing.models import Bill, BillStatus
from backend.db import to_global_id
from backend.notifications.models import Notification
from backend.settings import Settings
from schema.core.relay import decode_id

OWNER_BILLS = """
query { viewer { units { code bills { id period amount outstanding status dueDate feeItem { code kind } } } } }
"""

TICKET = """
query($id: ID!) { node(id: $id) { ... on Ticket { status rating bill { id amount status } } } }
"""

PAY = """
mutation($input: PayBillsInput!) {
  payBills(input: $input) { payment { id status payUrl } errors { field code message } }
}
"""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def public_api(settings: Settings, runtime: Any) -> AsyncIterator[str]:
    """The test runtime on a loopback port; the sandbox's pay and callback URLs point here."""
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


def _ok(result: dict[str, Any]) -> dict[str, Any]:
    assert result["errors"] == [], result
    ticket: dict[str, Any] = result["ticket"]
    return ticket


async def test_an_owner_reports_a_leak_pays_the_repair_and_rates_it(
    as_user: Any, runtime: Any, demo: Demo, public_api: str
) -> None:
    owner, cs, tech = await as_user("owner.a1"), await as_user("cs.a"), await as_user("tech.a")
    # owner.a1 reports a leak in their kitchen
    submitted = _ok(
        (
            await owner.data(
                SUBMIT,
                {
                    "input": {
                        "kind": "REPAIR",
                        "category": "plumbing",
                        "title": "厨房水槽下水管漏水",
                        "unitId": to_global_id("Unit", demo.home.id),
                        "contactPhone": "13700002222",
                        "appointmentAt": "2030-01-05T09:00:00+08:00",
                        "appointmentEnd": "2030-01-05T12:00:00+08:00",
                    }
                },
            )
        )["submitTicket"]
    )
    ticket_id = submitted["id"]
    assert submitted["status"] == "NEW"
    # customer service gives it to tech.a, who starts and resolves it with charges
    assigned = _ok(
        (await cs.data(ASSIGN, {"input": {"ticketId": ticket_id, "assigneeId": demo.gid("tech.a")}}))["assignTicket"]
    )
    assert (assigned["status"], assigned["assignee"]) == ("ASSIGNED", {"username": "tech.a"})
    assert assigned["contactPhone"] == "13700002222"  # customer service sees it in full
    started = _ok((await tech.data(START, {"input": {"ticketId": ticket_id}}))["startTicket"])
    assert started["contactPhone"] == "13700002222"  # so does the assignee
    resolved = _ok(
        (
            await tech.data(
                RESOLVE,
                {
                    "input": {
                        "ticketId": ticket_id,
                        "resolution": "更换下水管及密封圈",
                        "charges": [
                            {"description": "人工费", "amount": "50.00"},
                            {"description": "PVC 下水管", "amount": "35.50"},
                        ],
                    }
                },
            )
        )["resolveTicket"]
    )
    assert resolved["status"] == "RESOLVED"
    assert [e["type"] for e in resolved["events"]] == ["SUBMITTED", "ASSIGNED", "STARTED", "RESOLVED"]
    # the owner sees the repair bill with their bills, and on the ticket
    units = (await owner.data(OWNER_BILLS))["viewer"]["units"]
    repair_bills = [b for u in units for b in u["bills"] if b["feeItem"]["kind"] == "REPAIR"]
    seen = (await owner.data(TICKET, {"id": ticket_id}))["node"]
    assert seen["bill"] is not None
    bill = next(b for b in repair_bills if b["id"] == seen["bill"]["id"])
    assert (bill["amount"], bill["outstanding"], bill["status"], bill["feeItem"]["code"]) == (
        "85.50", "85.50", "UNPAID", "RP01",
    )  # fmt: skip
    async with runtime.sessionmaker() as session:
        stored_bill = await session.get(Bill, decode_id(bill["id"], "Bill"))
        assert stored_bill is not None
        assert stored_bill.ticket_id == decode_id(ticket_id, "Ticket")
        assert stored_bill.unit_id == demo.home.id
        told = (
            await session.scalars(
                select(Notification.kind)
                .where(
                    Notification.user_id == demo.users["owner.a1"], Notification.data["ticketId"].astext == ticket_id
                )
                .order_by(Notification.id)
            )
        ).all()
    assert list(told) == ["ticket_assigned", "ticket_resolved"]
    # the technician sees the ticket but not the bill (no Bill read)
    assert (await tech.data(TICKET, {"id": ticket_id}))["node"]["bill"] is None
    # the owner pays it online; the provider calls back
    started_payment = (
        await owner.data(
            PAY,
            {
                "input": {
                    "billIds": [bill["id"]],
                    "amount": "85.50",
                    "method": "ONLINE",
                    "idempotencyKey": uuid.uuid4().hex,
                }
            },
        )
    )["payBills"]
    assert started_payment["errors"] == []
    async with httpx.AsyncClient(timeout=10) as browser:
        paid = await browser.post(started_payment["payment"]["payUrl"], data={"callback": "1"})
    assert paid.status_code == 200
    async with runtime.sessionmaker() as session:
        settled = await session.get(Bill, decode_id(bill["id"], "Bill"))
    assert settled is not None
    assert settled.status is BillStatus.PAID
    assert (await owner.data(TICKET, {"id": ticket_id}))["node"]["bill"]["status"] == "PAID"
    # and rates the repair
    rated = _ok(
        (await owner.data(RATE, {"input": {"ticketId": ticket_id, "rating": 5, "comment": "很快"}}))["rateTicket"]
    )
    assert (rated["status"], rated["rating"], rated["events"][-1]["type"]) == ("RESOLVED", 5, "RATED")
    twice = (await owner.data(RATE, {"input": {"ticketId": ticket_id, "rating": 1}}))["rateTicket"]
    assert [e["code"] for e in twice["errors"]] == ["ALREADY_RATED"]
