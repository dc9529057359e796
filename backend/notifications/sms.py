"""The SMS channel of the whole product: billing reminders now, work orders and alarms later.

A text message is owed in the business transaction (:func:`queue_sms` writes one
``sms_messages`` row per dedup key and owes a ``send_sms`` job through the outbox); the worker
hands it to the configured :class:`SmsChannel` (:func:`send_queued`). The body is rendered
once, from a named template, when the message is queued: what was sent is what the row says.

Phone numbers are personal data: they are written to the row the gateway needs, and logged
only masked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from string import Formatter
from typing import Protocol

import structlog
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from authz.fields import mask_phone
from backend.db import utcnow
from backend.notifications.models import SmsMessage
from backend.outbox import enqueue
from backend.settings import Settings

log = structlog.get_logger(__name__)

SEND_TASK = "send_sms"


class SmsStatus:
    QUEUED = "QUEUED"
    SENT = "SENT"
    FAILED = "FAILED"
    SKIPPED = "SKIPPED"  # never to be sent (the demo's history)


class SmsChannelError(Exception):
    """The gateway refused or could not take a message; the worker retries."""


class SmsChannel(Protocol):
    """A way to send a rendered text message to a phone."""

    @property
    def name(self) -> str:
        """Recorded on each message the channel sent (``sms_messages.channel``)."""
        ...

    async def send(self, *, phone: str, body: str, reference: str) -> str:
        """Send ``body`` to ``phone``; returns the gateway's message id or raises.

        ``reference`` is ours and stable across retries (a gateway that accepts a caller's id
        can drop a repeat when our worker died between its answer and our commit)."""
        ...


class LocalSmsChannel:
    """Sends nothing: the ``sms_messages`` row is the record of what would have been sent."""

    name = "local"

    async def send(self, *, phone: str, body: str, reference: str) -> str:
        log.info("sms.local", phone=mask_phone(phone), reference=reference, length=len(body))
        return f"local-{reference}"


def build_sms_channel(settings: Settings) -> SmsChannel:
    """The channel ``WUYE_SMS_CHANNEL`` names."""
    channels: dict[str, type[LocalSmsChannel]] = {"local": LocalSmsChannel}
    channel = channels[settings.sms_channel]()
    if settings.production and channel.name == "local":
        log.warning("sms.local_channel_in_production", hint="text messages are recorded, not sent")
    return channel


# templates


@dataclass(frozen=True, slots=True)
class SmsTemplate:
    code: str
    title: str  # also the title of the matching in-app notification
    text: str  # str.format fields; every one is a required parameter

    @property
    def params(self) -> frozenset[str]:
        return frozenset(name for _, name, _, _ in Formatter().parse(self.text) if name)

    def render(self, params: dict[str, str]) -> str:
        missing = self.params - params.keys()
        if missing:
            raise ValueError(f"template {self.code} needs {sorted(missing)}")
        return self.text.format_map(params)


_BILLS = "{estate} {unit}：您有{count}笔账单（{items}）合计{amount}元"
TEMPLATES: dict[str, SmsTemplate] = {
    t.code: t
    for t in (
        SmsTemplate("bill_due_soon", "账单到期提醒", _BILLS + "，将于{due_date}到期，请及时缴纳。"),
        SmsTemplate("bill_due", "账单到期提醒", _BILLS + "，到期日为{due_date}，请及时缴纳。"),
        SmsTemplate("bill_overdue", "欠费提醒", _BILLS + "已逾期（到期日{due_date}），请尽快缴纳。"),
        SmsTemplate(
            "bill_overdue_final",
            "欠费催缴通知",
            _BILLS + "已逾期30天以上（到期日{due_date}），请尽快缴纳，如有疑问请联系物业服务中心。",
        ),
        SmsTemplate(
            "ticket_assigned",
            "新工单派单",
            "工单{number}（{category}）已派给您：{title}，地点：{place}，请于{respond_by}前响应。",
        ),
        SmsTemplate(
            "ticket_overdue",
            "工单超时提醒",
            "工单{number}（{title}，{place}）已超过{deadline}时限（{due_at}），请尽快处理。",
        ),
        SmsTemplate(
            "ticket_escalated",
            "工单超时升级",
            "工单{number}（{title}，{place}）超过{deadline}时限（{due_at}）仍未处理，已升级至您督办。",
        ),
        SmsTemplate("alarm_raised", "设备告警", "{place} {device}发生{severity}告警：{type}，{message}，请立即处理。"),
        SmsTemplate(
            "alarm_escalated",
            "告警未确认升级",
            "{place} {device}的{severity}告警（{type}）已{minutes}分钟未确认，已升级至您督办。",
        ),
        SmsTemplate(
            "alarm_reminder",
            "告警仍未确认",
            "{place} {device}的{severity}告警（{type}）已{minutes}分钟仍未确认，请尽快处理。",
        ),
    )
}


def render(template: str, params: dict[str, str]) -> str:
    return TEMPLATES[template].render(params)


# queueing and sending


async def queue_sms(
    session: AsyncSession,
    *,
    phone: str,
    template: str,
    params: dict[str, str],
    dedup_key: str,
    user_id: int | None = None,
) -> int | None:
    """Owe a text message, once per ``dedup_key``, in the caller's transaction.

    Returns the new message's id, or None when the key was queued before (nothing is owed
    again)."""
    body = render(template, params)
    message_id = await session.scalar(
        insert(SmsMessage)
        .values(
            user_id=user_id,
            phone=phone,
            template=template,
            params=params,
            body=body,
            dedup_key=dedup_key,
            status=SmsStatus.QUEUED,
        )
        .on_conflict_do_nothing(index_elements=["dedup_key"])
        .returning(SmsMessage.id)
    )
    if message_id is not None:
        await enqueue(session, task=SEND_TASK, job_id=f"sms:{message_id}", sms_id=message_id)
    return message_id


@dataclass(frozen=True, slots=True)
class SendOutcome:
    status: str  # SENT, ALREADY_SENT, FAILED (given up before), SKIPPED, MISSING, BUSY, ERROR
    error: str | None = None


def _scrub(error: BaseException, phone: str) -> str:
    """The error text as recorded: a gateway that echoes the number gets it masked."""
    text = f"{type(error).__name__}: {error}"
    if phone:
        text = text.replace(phone, mask_phone(phone) or "")
    return re.sub(r"\s+", " ", text)[:500]


async def send_queued(session: AsyncSession, *, sms_id: int, channel: SmsChannel, give_up: bool) -> SendOutcome:
    """Hand one queued message to ``channel``, in the caller's transaction.

    The row is locked while the gateway is called, so two workers never send it twice; a
    SENT row is never sent again. A failure is counted on the row (``attempts``,
    ``last_error``) and reported as ERROR for the caller to retry, or the row is marked
    FAILED when ``give_up``."""
    message = await session.scalar(select(SmsMessage).where(SmsMessage.id == sms_id).with_for_update(skip_locked=True))
    if message is None:
        exists = await session.scalar(select(SmsMessage.id).where(SmsMessage.id == sms_id))
        return SendOutcome("BUSY" if exists is not None else "MISSING")
    if message.status == SmsStatus.SENT:
        return SendOutcome("ALREADY_SENT")
    if message.status == SmsStatus.FAILED:
        return SendOutcome("FAILED")
    if message.status == SmsStatus.SKIPPED:
        return SendOutcome("SKIPPED")
    message.attempts += 1
    try:
        provider_id = await channel.send(phone=message.phone, body=message.body, reference=str(message.id))
    except Exception as exc:  # whatever the gateway raised, it is recorded and retried
        message.last_error = _scrub(exc, message.phone)
        if give_up:
            message.status = SmsStatus.FAILED
        log.warning(
            "sms.send_failed",
            sms_id=message.id,
            phone=mask_phone(message.phone),
            attempts=message.attempts,
            gave_up=give_up,
            error=message.last_error,
        )
        return SendOutcome("FAILED" if give_up else "ERROR", message.last_error)
    message.status = SmsStatus.SENT
    message.channel = channel.name
    message.provider_message_id = provider_id[:64]
    message.sent_at = utcnow()
    log.info("sms.sent", sms_id=message.id, phone=mask_phone(message.phone), channel=channel.name)
    return SendOutcome("SENT")
