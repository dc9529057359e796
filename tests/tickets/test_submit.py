"""submitTicket: who may report what, for which unit or estate, with which photos."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from tickets_support import SUBMIT, Demo, count

from backend.db import to_global_id
from backend.tickets.models import Ticket, TicketChannel


def _input(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"kind": "REPAIR", "category": "plumbing", "title": "卫生间下水道堵塞"}
    values.update(overrides)
    return {"input": values}


async def _tickets_titled(runtime: Any, title: str) -> int:
    return await count(runtime, select(Ticket.id).where(Ticket.title == title))


async def test_an_owner_reports_a_repair_for_their_own_flat(as_user: Any, runtime: Any, demo: Demo) -> None:
    # given
    owner = await as_user("owner.a1")
    # when
    result = (
        await owner.data(
            SUBMIT,
            _input(
                unitId=to_global_id("Unit", demo.home.id),
                description="下水很慢",
                contactPhone="13800001111",
                photoUrls=["https://img.example.com/a.jpg"],
                priority="HIGH",
            ),
        )
    )["submitTicket"]
    # then
    assert result["errors"] == []
    ticket = result["ticket"]
    assert (ticket["status"], ticket["kind"], ticket["priority"], ticket["unit"], ticket["estate"]) == (
        "NEW", "REPAIR", "HIGH", {"code": "1-1-101"}, {"code": "DEMO-A"},
    )  # fmt: skip
    assert ticket["reporter"] == {"username": "owner.a1"}
    assert ticket["contactPhone"] == "13800001111"  # the reporter sees their own number
    assert [(e["type"], e["toStatus"], e["actor"]) for e in ticket["events"]] == [
        ("SUBMITTED", "NEW", {"username": "owner.a1"})
    ]
    async with runtime.sessionmaker() as session:
        stored = await session.scalar(select(Ticket).where(Ticket.number == ticket["number"]))
    assert stored is not None
    assert (stored.channel, stored.photo_urls) == (TicketChannel.APP, ["https://img.example.com/a.jpg"])


async def test_an_owner_reports_a_public_area_of_their_estate(as_user: Any, demo: Demo) -> None:
    owner = await as_user("owner.a1")
    result = (
        await owner.data(
            SUBMIT,
            _input(estateId=to_global_id("Estate", demo.estate.id), location="2号楼门口路灯", category="electrical"),
        )
    )["submitTicket"]
    assert result["errors"] == []
    assert (result["ticket"]["unit"], result["ticket"]["estate"]) == (None, {"code": "DEMO-A"})


@pytest.mark.parametrize("target", ["neighbours_flat", "other_estate", "nothing"])
async def test_an_owner_cannot_report_for_someone_elses_unit_or_estate(
    as_user: Any, runtime: Any, demo: Demo, target: str
) -> None:
    # given
    owner = await as_user("owner.a1")
    title = f"越权报修 {target}"
    where = {
        "neighbours_flat": {"unitId": to_global_id("Unit", demo.neighbour.id)},
        "other_estate": {"estateId": to_global_id("Estate", demo.other_estate.id)},
        "nothing": {},
    }[target]
    # when
    result = (await owner.data(SUBMIT, _input(title=title, **where)))["submitTicket"]
    # then
    assert result["ticket"] is None
    assert [e["code"] for e in result["errors"]] == ["INVALID_SCOPE"]
    assert await _tickets_titled(runtime, title) == 0


@pytest.mark.parametrize(
    "urls",
    [
        ["http://img.example.com/a.jpg"],
        ["javascript:alert(1)"],
        ["https://"],
        ["https://img.example.com/" + "a" * 490],
        [f"https://img.example.com/{i}.jpg" for i in range(10)],
        ["https://img.example.com/a b.jpg"],
    ],
    ids=["http", "javascript", "no_host", "too_long", "ten_photos", "whitespace"],
)
async def test_photo_urls_must_be_at_most_nine_https_urls(
    as_user: Any, runtime: Any, demo: Demo, urls: list[str]
) -> None:
    owner = await as_user("owner.a1")
    title = f"照片校验 {len(urls)} {urls[0][:12]}"
    result = (await owner.data(SUBMIT, _input(title=title, unitId=to_global_id("Unit", demo.home.id), photoUrls=urls)))[
        "submitTicket"
    ]
    assert [e["code"] for e in result["errors"]] == ["INVALID_PHOTO_URL"]
    assert await _tickets_titled(runtime, title) == 0


async def test_nine_https_photos_are_accepted(as_user: Any, demo: Demo) -> None:
    owner = await as_user("owner.a1")
    urls = [f"https://img.example.com/{i}.jpg" for i in range(9)]
    result = (await owner.data(SUBMIT, _input(unitId=to_global_id("Unit", demo.home.id), photoUrls=urls)))[
        "submitTicket"
    ]
    assert result["errors"] == []


async def test_a_resident_cannot_raise_an_alarm_ticket(as_user: Any, runtime: Any, demo: Demo) -> None:
    owner = await as_user("owner.a1")
    result = (
        await owner.data(SUBMIT, _input(kind="ALARM", title="住户报警单", unitId=to_global_id("Unit", demo.home.id)))
    )["submitTicket"]
    assert [e["code"] for e in result["errors"]] == ["INVALID_INPUT"]
    assert await _tickets_titled(runtime, "住户报警单") == 0


async def test_customer_service_reports_a_phone_call_on_an_owners_behalf(
    as_user: Any, runtime: Any, demo: Demo
) -> None:
    # given owner.a1's person
    async with runtime.sessionmaker() as session:
        from backend.accounts.models import User

        person_id = await session.scalar(select(User.person_id).where(User.username == "owner.a1"))
    cs = await as_user("cs.a")
    # when
    result = (
        await cs.data(
            SUBMIT,
            _input(
                title="电话报修 门锁坏了",
                category="doors_locks",
                unitId=to_global_id("Unit", demo.home.id),
                channel="PHONE",
                reporterPersonId=to_global_id("Person", person_id),
            ),
        )
    )["submitTicket"]
    # then
    assert result["errors"] == []
    assert result["ticket"]["reporter"] == {"username": "owner.a1"}
    assert result["ticket"]["events"][0]["actor"] == {"username": "cs.a"}
    async with runtime.sessionmaker() as session:
        stored = await session.scalar(select(Ticket).where(Ticket.number == result["ticket"]["number"]))
    assert stored is not None
    assert stored.channel is TicketChannel.PHONE


@pytest.mark.parametrize("username", ["cs.a", "manager.north"])
async def test_staff_cannot_report_outside_their_estates(as_user: Any, runtime: Any, demo: Demo, username: str) -> None:
    client = await as_user(username)
    title = f"越区报修 {username}"
    result = (await client.data(SUBMIT, _input(title=title, estateId=to_global_id("Estate", demo.other_estate.id))))[
        "submitTicket"
    ]
    assert [e["code"] for e in result["errors"]] == ["NOT_FOUND"]
    assert await _tickets_titled(runtime, title) == 0


@pytest.mark.parametrize("username", ["tech.a", "finance.north", "guard.a", "supervisor.north"])
async def test_roles_without_submit_are_forbidden(as_user: Any, runtime: Any, demo: Demo, username: str) -> None:
    client = await as_user(username)
    title = f"无权报修 {username}"
    body = await client.execute(SUBMIT, _input(title=title, unitId=to_global_id("Unit", demo.home.id)))
    assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    assert await _tickets_titled(runtime, title) == 0


async def test_an_unknown_category_writes_nothing(as_user: Any, runtime: Any, demo: Demo) -> None:
    owner = await as_user("owner.a1")
    result = (
        await owner.data(
            SUBMIT, _input(title="未知类别", category="teleport", unitId=to_global_id("Unit", demo.home.id))
        )
    )["submitTicket"]
    assert [e["code"] for e in result["errors"]] == ["INVALID_CATEGORY"]
    assert await _tickets_titled(runtime, "未知类别") == 0
