"""alarmEvents across API processes: a second, independent API process (`wuye serve` as a child
process, with its own events bus on the same Redis and database) delivers to its websocket
subscribers the alarms raised and acknowledged through the first (this test process)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from alarms_support import gid, raise_on
from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

from backend.alarms.models import AlarmSeverity
from backend.events import CHANNEL_PREFIX
from backend.settings import Settings

TRANSPORT_WS = Subprotocol("graphql-transport-ws")
EVENTS = "subscription { alarmEvents { kind alarm { id status deviceId estate { code } } } }"
ACK = "mutation($input: AcknowledgeAlarmInput!) { acknowledgeAlarm(input: $input) { errors { code } } }"
READY_SECONDS = 60.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wuye() -> str:
    script = Path(sys.executable).parent / "wuye"
    found = str(script) if script.exists() else shutil.which("wuye")
    assert found, "the `wuye` console script is not installed in this environment"
    return found


@pytest.fixture
def second_api(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """`wuye serve --no-iot` on a free port, on the test database and Redis; yields ``host:port``."""
    port = _free_port()
    env = {
        **os.environ,
        "WUYE_DATABASE_URL": settings.database_url or "",
        "WUYE_REDIS_URL": settings.redis_url or "",
        "WUYE_SECRET_KEY": settings.secret_key or "",
        "WUYE_REQUESTS_PER_MINUTE": str(settings.requests_per_minute),
        "WUYE_DATA_DIR": str(tmp_path),
    }
    env.pop("WUYE_MQTT_URL", None)
    log = (tmp_path / "api.log").open("wb")
    process = subprocess.Popen(
        [_wuye(), "serve", "--host", "127.0.0.1", "--port", str(port), "--no-iot"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_ready(process, port, tmp_path / "api.log")
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()


def _wait_ready(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=1.0) as http:
        for _ in range(int(READY_SECONDS / 0.2)):
            if process.poll() is not None:
                raise AssertionError(f"`wuye serve` exited with {process.returncode}:\n{log.read_text()}")
            with contextlib.suppress(httpx.HTTPError):
                if http.get("/readyz").status_code == 200:
                    return
            time.sleep(0.2)
    raise AssertionError(f"`wuye serve` not ready within {READY_SECONDS} s:\n{log.read_text()}")


@contextlib.asynccontextmanager
async def _subscribed(api: str, token: str) -> AsyncIterator[ClientConnection]:
    async with connect(f"ws://{api}/graphql", subprotocols=[TRANSPORT_WS], open_timeout=10) as ws:
        await ws.send(json.dumps({"type": "connection_init", "payload": {"Authorization": f"Bearer {token}"}}))
        assert json.loads(await asyncio.wait_for(ws.recv(), timeout=5))["type"] == "connection_ack"
        await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {"query": EVENTS}}))
        yield ws


async def _event(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
        if message["type"] == "ping":
            await ws.send(json.dumps({"type": "pong"}))
            continue
        assert message["type"] == "next", message
        return message["payload"]["data"]["alarmEvents"]  # type: ignore[no-any-return]


async def _listeners(runtime: Any) -> int:
    ((_name, count),) = await runtime.redis.pubsub_numsub(CHANNEL_PREFIX + "alarms")
    return int(count)


async def test_a_second_process_delivers_what_the_first_raised_and_acknowledged(
    second_api: str, as_user: Any, runtime: Any, devices: Callable[[], str]
) -> None:
    # given supervisor.north subscribed on the second process (its hub listening on Redis)
    north = await as_user("supervisor.north")
    before = await _listeners(runtime)
    async with _subscribed(second_api, north.token) as ws:
        for _ in range(250):
            if await _listeners(runtime) > before:
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("the second process does not listen on the alarms channel")
        await asyncio.sleep(0.2)
        # when an alarm is raised in DEMO-A through this process, then acknowledged here by mutation
        device = devices()
        change = await raise_on(runtime, "DEMO-A", device, severity=AlarmSeverity.CRITICAL, automate=True)
        raised = await _event(ws)
        acknowledged = (await north.data(ACK, {"input": {"alarmId": gid(change.alarm.id)}}))["acknowledgeAlarm"]
        assert acknowledged["errors"] == []
        then = await _event(ws)
        # then the second process delivered both, each with the alarm as it was then
        assert raised == {"kind": "RAISED", "alarm": {"id": gid(change.alarm.id), "status": "ACTIVE",
                          "deviceId": device, "estate": {"code": "DEMO-A"}}}  # fmt: skip
        assert (then["kind"], then["alarm"]["id"], then["alarm"]["status"]) == (
            "ACKNOWLEDGED",
            gid(change.alarm.id),
            "ACKNOWLEDGED",
        )
