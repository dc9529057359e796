"""setSlaRule, slaRules, setTechnicianSkills, setEstateAutoAssign: who may, and what changes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from sla_support import Dispatch, submit
from sqlalchemy import delete, func, select

from backend.audit.models import AuditEntry
from backend.db import to_global_id
from backend.property.models import Estate
from backend.tickets.models import SlaRule, TechnicianSkill, TicketCategory, TicketPriority

SET_SLA_RULE = """
mutation($input: SetSlaRuleInput!) {
  setSlaRule(input: $input) {
    slaRule { priority categoryCode responseMinutes resolveMinutes isDefault } errors { field code message }
  }
}
"""
SLA_RULES = "query { slaRules { priority categoryCode responseMinutes resolveMinutes isDefault } }"
SET_SKILLS = """
mutation($input: SetTechnicianSkillsInput!) {
  setTechnicianSkills(input: $input) { user { username } categoryCodes errors { field code message } }
}
"""
SET_AUTO_ASSIGN = """
mutation($input: SetEstateAutoAssignInput!) {
  setEstateAutoAssign(input: $input) { estate { code autoAssignTickets } errors { field code message } }
}
"""

ROLES = ["admin", "manager.north", "cs.a", "finance.north", "tech.a", "guard.a", "supervisor.north",
         "supervisor.south", "owner.a1", None]  # fmt: skip
# Company settings need the grant at the company: admin only among the demo accounts.
SLA_WRITE = {"admin"}
SLA_READ = {"admin", "manager.north", "cs.a"}
# Skills and auto-assignment of office X (under North): admin and North's manager.
DISPATCH_WRITE = {"admin", "manager.north"}
# A rule nobody else's tests rely on, and deadlines that tell it from the default.
RULE = {"priority": "LOW", "categoryCode": "greening", "responseMinutes": 600, "resolveMinutes": 2880}


def _refusal(body: dict[str, Any], field: str, username: str | None) -> None:
    assert body["data"] is None, body
    assert [(e["extensions"]["code"], e["path"]) for e in body["errors"]] == [
        ("UNAUTHENTICATED" if username is None else "FORBIDDEN", [field])
    ]


async def _audit_count(runtime: Any, action: str) -> int:
    async with runtime.sessionmaker() as session:
        return int(await session.scalar(select(func.count()).where(AuditEntry.action == action)) or 0)


@pytest_asyncio.fixture(loop_scope="session")
async def greening_rule(runtime: Any) -> AsyncIterator[None]:
    """Removes the company's LOW/greening rule the tests set."""
    yield
    async with runtime.sessionmaker() as session, session.begin():
        greening = select(TicketCategory.id).where(TicketCategory.code == "greening")
        await session.execute(delete(SlaRule).where(SlaRule.category_id.in_(greening)))


async def _greening_rules(runtime: Any) -> list[tuple[int, int]]:
    async with runtime.sessionmaker() as session:
        rows = await session.execute(
            select(SlaRule.response_minutes, SlaRule.resolve_minutes)
            .join(TicketCategory, TicketCategory.id == SlaRule.category_id)
            .where(TicketCategory.code == "greening", SlaRule.priority == TicketPriority.LOW)
        )
        return [(r, s) for r, s in rows]


@pytest.mark.parametrize("username", ROLES)
async def test_only_the_company_sets_sla_rules(
    runtime: Any, as_user: Any, greening_rule: None, dispatch: Dispatch, username: str | None
) -> None:
    # given
    client = await as_user(username)
    audits = await _audit_count(runtime, "ticket.sla_rule.set")
    # when
    body = await client.execute(SET_SLA_RULE, {"input": RULE})
    # then
    if username in SLA_WRITE:
        assert body["data"]["setSlaRule"] == {
            "slaRule": {**RULE, "isDefault": False}, "errors": []}  # fmt: skip
        assert await _greening_rules(runtime) == [(600, 2880)]
        assert await _audit_count(runtime, "ticket.sla_rule.set") == audits + 1
        # and a LOW greening ticket opened now gets the rule's deadlines
        ticket = await submit(runtime, dispatch.y.estate, category="greening", priority=TicketPriority.LOW)
        assert ticket.response_due_at - ticket.created_at == dt.timedelta(minutes=600)
        assert ticket.resolve_due_at - ticket.created_at == dt.timedelta(minutes=2880)
    else:
        _refusal(body, "setSlaRule", username)
        assert await _greening_rules(runtime) == []
        assert await _audit_count(runtime, "ticket.sla_rule.set") == audits


async def test_setting_a_rule_again_replaces_it_and_bad_minutes_change_nothing(
    runtime: Any, as_user: Any, greening_rule: None
) -> None:
    # given
    admin = await as_user("admin")
    await admin.data(SET_SLA_RULE, {"input": RULE})
    # when
    again = await admin.data(SET_SLA_RULE, {"input": {**RULE, "responseMinutes": 60}})
    general = await admin.data(SET_SLA_RULE, {"input": {**RULE, "categoryCode": None, "responseMinutes": 1440,
                                                          "resolveMinutes": 10080}})  # fmt: skip
    backwards = await admin.data(SET_SLA_RULE, {"input": {**RULE, "resolveMinutes": 30}})
    unknown = await admin.data(SET_SLA_RULE, {"input": {**RULE, "categoryCode": "astrology"}})
    rules = (await admin.data(SLA_RULES))["slaRules"]
    # then
    assert again["setSlaRule"]["errors"] == []
    assert general["setSlaRule"]["errors"] == []
    assert [e["code"] for e in backwards["setSlaRule"]["errors"]] == ["INVALID_INPUT"]
    assert [e["code"] for e in unknown["setSlaRule"]["errors"]] == ["INVALID_CATEGORY"]
    assert await _greening_rules(runtime) == [(60, 2880)]
    assert [r["priority"] for r in rules[:4]] == ["URGENT", "HIGH", "NORMAL", "LOW"]
    assert rules[0] == {"priority": "URGENT", "categoryCode": None, "responseMinutes": 30, "resolveMinutes": 240,
                        "isDefault": True}  # fmt: skip
    assert rules[3] == {"priority": "LOW", "categoryCode": None, "responseMinutes": 1440, "resolveMinutes": 10080,
                        "isDefault": False}  # fmt: skip
    assert {"priority": "LOW", "categoryCode": "greening", "responseMinutes": 60, "resolveMinutes": 2880,
            "isDefault": False} in rules  # fmt: skip
    # cleanup of the general LOW rule (the fixture removes the category one)
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            delete(SlaRule).where(SlaRule.priority == TicketPriority.LOW, SlaRule.category_id.is_(None))
        )


@pytest.mark.parametrize("username", ROLES)
async def test_the_desk_and_managers_read_the_sla_rules(as_user: Any, username: str | None) -> None:
    # given
    client = await as_user(username)
    # when
    body = await client.execute(SLA_RULES)
    # then
    if username in SLA_READ:
        assert len(body["data"]["slaRules"]) >= 4
    else:
        _refusal(body, "slaRules", username)


async def _skills(runtime: Any, user_id: int) -> set[str]:
    async with runtime.sessionmaker() as session:
        return set(
            (
                await session.scalars(
                    select(TicketCategory.code)
                    .join(TechnicianSkill, TechnicianSkill.category_id == TicketCategory.id)
                    .where(TechnicianSkill.user_id == user_id)
                )
            ).all()
        )


@pytest.mark.parametrize("username", ROLES)
async def test_managers_set_the_skills_of_their_technicians(
    runtime: Any, as_user: Any, dispatch: Dispatch, username: str | None
) -> None:
    # given t3, a technician of office X without skills
    client = await as_user(username)
    t3 = dispatch.users["t3"]
    variables = {"input": {"userId": to_global_id("User", t3), "categoryCodes": ["elevator", "Plumbing "]}}
    # when
    body = await client.execute(SET_SKILLS, variables)
    # then
    if username in DISPATCH_WRITE:
        payload = body["data"]["setTechnicianSkills"]
        assert payload["errors"] == []
        assert sorted(payload["categoryCodes"]) == ["elevator", "plumbing"]
        assert await _skills(runtime, t3) == {"elevator", "plumbing"}
        # and an elevator ticket now goes to t3, the only one who knows elevators
        ticket = await submit(runtime, dispatch.x.estate, category="elevator")
        assert ticket.assignee_id == t3
    else:
        _refusal(body, "setTechnicianSkills", username)
        assert await _skills(runtime, t3) == set()


async def test_skills_are_replaced_and_only_technicians_have_them(
    runtime: Any, as_user: Any, dispatch: Dispatch
) -> None:
    # given
    manager = await as_user("manager.north")
    t1, cs = dispatch.users["t1"], dispatch.users["cs"]
    # when
    replaced = await manager.data(
        SET_SKILLS, {"input": {"userId": to_global_id("User", t1), "categoryCodes": ["noise"]}}
    )
    unknown = await manager.data(SET_SKILLS, {"input": {"userId": to_global_id("User", t1), "categoryCodes": ["x"]}})
    desk = await manager.data(SET_SKILLS, {"input": {"userId": to_global_id("User", cs), "categoryCodes": ["noise"]}})
    # then
    assert replaced["setTechnicianSkills"]["categoryCodes"] == ["noise"]
    assert [e["code"] for e in unknown["setTechnicianSkills"]["errors"]] == ["INVALID_CATEGORY"]
    assert [e["code"] for e in desk["setTechnicianSkills"]["errors"]] == ["INVALID_ASSIGNEE"]
    assert await _skills(runtime, t1) == {"noise"}
    assert await _skills(runtime, cs) == set()


async def _auto_assign(runtime: Any, estate_id: int) -> bool:
    async with runtime.sessionmaker() as session:
        value = await session.scalar(select(Estate.auto_assign_tickets).where(Estate.id == estate_id))
    return bool(value)


@pytest.mark.parametrize("username", ROLES)
async def test_managers_turn_auto_assignment_on_for_their_estates(
    runtime: Any, as_user: Any, dispatch: Dispatch, username: str | None
) -> None:
    # given office Y's estate, not auto-assigning
    client = await as_user(username)
    estate = dispatch.y.estate
    # when
    body = await client.execute(SET_AUTO_ASSIGN, {"input": {"estateId": to_global_id("Estate", estate.id),
                                                            "enabled": True}})  # fmt: skip
    # then
    if username in DISPATCH_WRITE:
        assert body["data"]["setEstateAutoAssign"] == {
            "estate": {"code": estate.code, "autoAssignTickets": True}, "errors": []}  # fmt: skip
        ticket = await submit(runtime, estate)
        assert ticket.assignee_id == dispatch.users["ty"]
    else:
        _refusal(body, "setEstateAutoAssign", username)
        assert await _auto_assign(runtime, estate.id) is False


async def test_an_estate_out_of_scope_is_not_found_and_unchanged(runtime: Any, as_user: Any) -> None:
    # given DEMO-C, in branch South
    manager = await as_user("manager.north")
    async with runtime.sessionmaker() as session:
        demo_c = await session.scalar(select(Estate.id).where(Estate.code == "DEMO-C"))
    assert demo_c is not None
    # when
    body = await manager.data(SET_AUTO_ASSIGN, {"input": {"estateId": to_global_id("Estate", demo_c),
                                                          "enabled": True}})  # fmt: skip
    # then
    assert [e["code"] for e in body["setEstateAutoAssign"]["errors"]] == ["NOT_FOUND"]
    assert await _auto_assign(runtime, demo_c) is False
