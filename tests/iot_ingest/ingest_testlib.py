"""Helpers of the ingest tests (a plain module: conftest.py is not importable)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from typing import Any

from sqlalchemy import select

from backend.events import Event, InProcessEventBus
from backend.property.models import Estate
from iot.payloads import payload_from_dict
from iot.subscriber import DeviceMessage as Message
from iot.topics import DeviceTopic, MessageKind

TS = "2026-11-22T08:00:00Z"


class RecordingBus(InProcessEventBus):
    """The in-process bus, also keeping what was published (after commit) to look at."""

    def __init__(self) -> None:
        super().__init__()
        self.published: list[tuple[str, Event]] = []

    async def publish(self, channel: str, event: Event) -> None:
        self.published.append((channel, event))
        await super().publish(channel, event)

    def kinds(self, device_alarm_ids: set[int] | None = None) -> list[str]:
        return [
            e["kind"]
            for c, e in self.published
            if c == "alarms" and (device_alarm_ids is None or e["alarmId"] in device_alarm_ids)
        ]


def message(
    device_id: str,
    kind: MessageKind | str,
    data: dict[str, Any],
    *,
    estate: str = "DEMO-A",
    at: dt.datetime | None = None,
) -> Message:
    kind = MessageKind(kind)
    if kind is not MessageKind.STATUS:
        data = {"ts": TS, **data}
    return Message(
        topic=DeviceTopic(estate_code=estate, device_id=device_id, kind=kind),
        payload=payload_from_dict(kind, data),
        received_at=at or dt.datetime.now(dt.UTC),
    )


async def demo_a(runtime: Any) -> Estate:
    async with runtime.sessionmaker() as session:
        estate = await session.scalar(select(Estate).where(Estate.code == "DEMO-A"))
    assert estate is not None
    return estate


class CuttableProxy:
    """A TCP proxy in front of a server (the broker, PostgreSQL) whose connections can be cut
    without a word — what the broker sees when a subscriber process dies mid-stream — and
    which, while ``down``, hangs up on every new connection (a server that is away)."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0
        self.down = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
