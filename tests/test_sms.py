"""The SMS channel: a text is owed once per dedup key in the business transaction, sent once
by the worker, retried with its failures counted, and its phone number never logged."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from arq import Retry
from sqlalchemy import delete, func, select, update
from structlog.testing import capture_logs

from backend.notifications.models import SmsMessage
from backend.notifications.sms import (
    TEMPLATES,
    LocalSmsChannel,
    SmsChannel,
    SmsChannelError,
    build_sms_channel,
    queue_sms,
    render,
)
from backend.outbox import OutboxMessage
from backend.settings import Settings
from workers.runtime import WorkerRuntime
from workers.settings import WorkerSettings
from workers.tasks import SMS_MAX_TRIES, resend_stuck_sms, send_sms

PARAMS = {
    "estate": "测试小区",
    "unit": "1-1-101",
    "count": "1",
    "items": "物业费(2001-03)",
    "amount": "223.90",
    "due_date": "2001年3月20日",
}


class RefusingChannel:
    """A gateway that refuses every message, echoing the number as real gateways do."""

    name = "refusing"

    def __init__(self) -> None:
        self.calls = 0

    async def send(self, *, phone: str, body: str, reference: str) -> str:
        self.calls += 1
        raise SmsChannelError(f"gateway refused {phone}: quota exceeded")


class CountingChannel(LocalSmsChannel):
    def __init__(self) -> None:
        self.calls: list[str] = []

    async def send(self, *, phone: str, body: str, reference: str) -> str:
        self.calls.append(reference)
        return await super().send(phone=phone, body=body, reference=reference)


@dataclasses.dataclass
class Texts:
    phone: str
    prefix: str  # of this test's dedup keys


@pytest_asyncio.fixture(loop_scope="session")
async def texts(runtime: Any) -> AsyncIterator[Texts]:
    owned = Texts(phone=f"139{random.randrange(10**8):08d}", prefix=f"sms-test:{uuid.uuid4().hex}")
    yield owned
    async with runtime.sessionmaker() as session, session.begin():
        ids = select(SmsMessage.id).where(SmsMessage.dedup_key.startswith(owned.prefix))
        jobs = [f"sms:{i}" for i in (await session.scalars(ids)).all()]
        await session.execute(delete(OutboxMessage).where(OutboxMessage.job_id.in_(jobs)))
        await session.execute(delete(SmsMessage).where(SmsMessage.dedup_key.startswith(owned.prefix)))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def worker(settings: Settings, runtime: Any) -> AsyncIterator[WorkerRuntime]:
    built = WorkerRuntime.build(settings)
    yield built
    await built.close()


async def _queue(runtime: Any, texts: Texts, key: str = "a") -> int | None:
    async with runtime.sessionmaker() as session, session.begin():
        return await queue_sms(
            session, phone=texts.phone, template="bill_due_soon", params=PARAMS, dedup_key=f"{texts.prefix}:{key}"
        )


async def _message(runtime: Any, sms_id: int) -> SmsMessage:
    async with runtime.sessionmaker() as session:
        message = await session.get(SmsMessage, sms_id)
    assert message is not None
    return message


async def test_a_text_is_queued_once_per_key_with_its_body_rendered_and_a_job_owed(runtime: Any, texts: Texts) -> None:
    # when
    first = await _queue(runtime, texts)
    again = await _queue(runtime, texts)
    # then
    assert first is not None
    assert again is None
    message = await _message(runtime, first)
    assert (message.status, message.attempts, message.channel, message.sent_at) == ("QUEUED", 0, None, None)
    assert message.template == "bill_due_soon"
    assert message.params == PARAMS
    assert (
        message.body
        == "测试小区 1-1-101：您有1笔账单（物业费(2001-03)）合计223.90元，将于2001年3月20日到期，请及时缴纳。"
    )
    async with runtime.sessionmaker() as session:
        jobs = (await session.execute(select(OutboxMessage.task, OutboxMessage.kwargs).where(
            OutboxMessage.job_id == f"sms:{first}"))).all()  # fmt: skip
        rows = await session.scalar(select(func.count()).where(SmsMessage.dedup_key.startswith(texts.prefix)))
    assert jobs == [("send_sms", {"sms_id": first})]
    assert rows == 1


async def test_a_rolled_back_transaction_owes_no_text(runtime: Any, texts: Texts) -> None:
    # given
    class Abort(Exception):
        pass

    async def queue_then_fail() -> None:
        async with runtime.sessionmaker() as session, session.begin():
            await queue_sms(
                session, phone=texts.phone, template="bill_due", params=PARAMS, dedup_key=f"{texts.prefix}:x"
            )
            raise Abort

    # when
    with pytest.raises(Abort):
        await queue_then_fail()
    # then
    async with runtime.sessionmaker() as session:
        assert await session.scalar(select(func.count()).where(SmsMessage.dedup_key.startswith(texts.prefix))) == 0


def test_a_template_refuses_missing_parameters_and_unknown_templates_are_refused() -> None:
    with pytest.raises(ValueError, match="amount"):
        TEMPLATES["bill_overdue"].render({k: v for k, v in PARAMS.items() if k != "amount"})
    assert TEMPLATES["bill_overdue"].params == frozenset(PARAMS)
    with pytest.raises(KeyError):
        render("no_such_template", PARAMS)


async def test_the_local_channel_marks_the_text_sent_and_a_second_job_sends_nothing(
    runtime: Any, worker: WorkerRuntime, texts: Texts
) -> None:
    # given
    sms_id = await _queue(runtime, texts)
    assert sms_id is not None
    channel = CountingChannel()
    local = dataclasses.replace(worker, sms=channel)
    # when
    first = await send_sms({"runtime": local, "job_try": 1}, sms_id=sms_id)
    second = await send_sms({"runtime": local, "job_try": 1}, sms_id=sms_id)
    # then
    assert (first, second) == ("SENT", "ALREADY_SENT")
    assert channel.calls == [str(sms_id)]
    message = await _message(runtime, sms_id)
    assert (message.status, message.channel, message.provider_message_id) == ("SENT", "local", f"local-{sms_id}")
    assert message.attempts == 1
    assert message.sent_at is not None


async def test_a_failing_channel_counts_attempts_records_the_error_masked_and_lets_arq_retry(
    runtime: Any, worker: WorkerRuntime, texts: Texts
) -> None:
    # given
    sms_id = await _queue(runtime, texts)
    assert sms_id is not None
    channel = RefusingChannel()
    refusing = dataclasses.replace(worker, sms=channel)
    # when
    for job_try in (1, 2):
        with pytest.raises(Retry):
            await send_sms({"runtime": refusing, "job_try": job_try}, sms_id=sms_id)
    # then
    message = await _message(runtime, sms_id)
    assert (message.status, message.attempts, message.sent_at) == ("QUEUED", 2, None)
    assert (
        message.last_error
        == f"SmsChannelError: gateway refused {texts.phone[:3]}****{texts.phone[-4:]}: quota exceeded"
    )
    assert texts.phone not in (message.last_error or "")
    assert channel.calls == 2


async def test_the_last_try_gives_up_and_a_failed_text_is_not_tried_again(
    runtime: Any, worker: WorkerRuntime, texts: Texts
) -> None:
    # given
    sms_id = await _queue(runtime, texts)
    assert sms_id is not None
    channel = RefusingChannel()
    refusing = dataclasses.replace(worker, sms=channel)
    # when
    last = await send_sms({"runtime": refusing, "job_try": SMS_MAX_TRIES}, sms_id=sms_id)
    later = await send_sms({"runtime": dataclasses.replace(worker, sms=CountingChannel()), "job_try": 1}, sms_id=sms_id)
    # then
    assert (last, later) == ("FAILED", "FAILED")
    message = await _message(runtime, sms_id)
    assert (message.status, message.attempts, message.provider_message_id) == ("FAILED", 1, None)
    assert channel.calls == 1


async def test_a_missing_text_is_reported_not_sent(worker: WorkerRuntime) -> None:
    channel = CountingChannel()
    assert await send_sms({"runtime": dataclasses.replace(worker, sms=channel)}, sms_id=-1) == "MISSING"
    assert channel.calls == []


async def test_the_phone_number_is_never_logged_unmasked(
    runtime: Any, worker: WorkerRuntime, texts: Texts, caplog: pytest.LogCaptureFixture
) -> None:
    # given
    sent = await _queue(runtime, texts, "sent")
    refused = await _queue(runtime, texts, "refused")
    assert sent is not None
    assert refused is not None
    caplog.set_level(logging.DEBUG)
    # when
    with capture_logs() as logs:
        await send_sms({"runtime": dataclasses.replace(worker, sms=LocalSmsChannel()), "job_try": 1}, sms_id=sent)
        with pytest.raises(Retry):
            await send_sms({"runtime": dataclasses.replace(worker, sms=RefusingChannel())}, sms_id=refused)
    # then
    masked = f"{texts.phone[:3]}****{texts.phone[-4:]}"
    assert [entry["event"] for entry in logs] == ["sms.local", "sms.sent", "sms.send_failed"]
    assert all(entry["phone"] == masked for entry in logs)
    assert texts.phone not in repr(logs)
    assert texts.phone not in caplog.text


def test_the_setting_chooses_the_channel() -> None:
    channel: SmsChannel = build_sms_channel(Settings(sms_channel="local"))
    assert isinstance(channel, LocalSmsChannel)
    assert channel.name == "local"
    with pytest.raises(ValueError, match="sms_channel"):
        Settings(sms_channel="carrier-pigeon")  # type: ignore[arg-type]


async def test_the_sweep_sends_texts_whose_job_was_lost_and_leaves_fresh_ones_to_their_job(
    runtime: Any, worker: WorkerRuntime, texts: Texts
) -> None:
    # given a text written 20 minutes ago whose job never ran, and one written just now
    old_id = await _queue(runtime, texts, "old")
    new_id = await _queue(runtime, texts, "new")
    assert old_id is not None
    assert new_id is not None
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(SmsMessage).where(SmsMessage.id == old_id).values(created_at=func.now() - dt.timedelta(minutes=20))
        )
    channel = CountingChannel()
    local = dataclasses.replace(worker, sms=channel)
    # when the sweep runs twice
    await resend_stuck_sms({"runtime": local})
    await resend_stuck_sms({"runtime": local})
    # then the old one is sent once; the fresh one waits for its own job
    assert str(old_id) in channel.calls
    assert channel.calls.count(str(old_id)) == 1
    assert str(new_id) not in channel.calls
    assert ((await _message(runtime, old_id)).status, (await _message(runtime, new_id)).status) == ("SENT", "QUEUED")


def test_the_sweep_is_scheduled_every_ten_minutes_once_across_workers() -> None:
    (job,) = [j for j in WorkerSettings.cron_jobs if j.name == "cron:resend_stuck_sms"]
    assert (job.minute, job.unique) == (set(range(7, 60, 10)), True)


async def test_a_skipped_text_is_never_sent_by_its_job_nor_by_the_sweep(
    runtime: Any, worker: WorkerRuntime, texts: Texts
) -> None:
    # given an old text marked SKIPPED (the demo's history)
    sms_id = await _queue(runtime, texts, "skipped")
    assert sms_id is not None
    async with runtime.sessionmaker() as session, session.begin():
        await session.execute(
            update(SmsMessage)
            .where(SmsMessage.id == sms_id)
            .values(status="SKIPPED", created_at=func.now() - dt.timedelta(minutes=20))
        )
    channel = CountingChannel()
    local = dataclasses.replace(worker, sms=channel)
    # when its job and the sweep run
    outcome = await send_sms({"runtime": local, "job_try": 1}, sms_id=sms_id)
    await resend_stuck_sms({"runtime": local})
    # then nothing reached the channel and the row is unchanged
    assert outcome == "SKIPPED"
    assert str(sms_id) not in channel.calls
    message = await _message(runtime, sms_id)
    assert (message.status, message.attempts, message.sent_at) == ("SKIPPED", 0, None)
