"""Real embedded servers: start, talk to each with the production drivers, stop, leave nothing behind."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg  # type: ignore[import-untyped]
import pytest
import redis.asyncio as aioredis
from gmqtt import Client
from gmqtt.mqtt.constants import MQTTv311
from gmqtt.mqtt.handler import MQTTConnectError

from backend.embedded import (
    STANDARD_PORTS,
    EmbeddedBroker,
    EmbeddedPostgres,
    EmbeddedRedis,
    EmbeddedServerError,
    EmbeddedServers,
    free_port,
)

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def scratch() -> Iterator[Path]:
    """A scratch directory outside /tmp/pytest-of-<user>: every pytest session that starts on
    this machine resets that tree to 0700, which (when we are root) locks the PostgreSQL server
    user out of its data directory while a path-resolving step runs. The module copes (see
    test_data_dir_ancestors_locked_down_between_runs), but tests should not depend on it."""
    path = Path(tempfile.mkdtemp(prefix="wuye-embedded-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _timing(name: str, seconds: float) -> None:
    print(f"embedded {name}: {seconds:.2f}s")  # shown with pytest -s


# --------------------------------------------------------------------------- helpers


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _alive(pid: int) -> bool:
    """Live process (a zombie is not: this machine's PID 1 may never reap orphans)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in {"Z", "X"}


def _children(pid: int) -> set[int]:
    """Direct children of pid, from /proc."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if ppid == pid:
            found.add(int(entry.name))
    return found


def _ps_lines_mentioning(text: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,stat,args"], capture_output=True, text=True, check=True).stdout
    lines = [line.split(None, 2) for line in out.splitlines()[1:]]
    return [
        " ".join(parts)
        for parts in lines
        if len(parts) == 3 and text in parts[2] and not parts[1].startswith("Z") and int(parts[0]) != os.getpid()
    ]


def _assert_all_gone(pids: set[int], ports: set[int], data_dir: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and (any(_alive(p) for p in pids) or any(_port_open(p) for p in ports)):
        time.sleep(0.1)
    assert [p for p in pids if _alive(p)] == []
    assert [p for p in ports if _port_open(p)] == []
    assert _ps_lines_mentioning(str(data_dir)) == []


async def _mqtt_client(
    url: str | None, client_id: str, *, clean_session: bool = True
) -> tuple[Any, asyncio.Queue[tuple[str, bytes]]]:
    """A connected gmqtt client (MQTT 3.1.1) and the queue its messages land in.

    The handler is set before connecting: a resumed session's queued messages arrive right
    after CONNACK.
    """
    assert url is not None
    parts = urlsplit(url)
    client = Client(client_id, clean_session=clean_session)
    if parts.username:
        client.set_auth_credentials(parts.username, parts.password)
    received: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def on_message(_client: Any, topic: str, payload: bytes, _qos: int, _properties: Any) -> int:
        received.put_nowait((topic, payload))
        return 0

    client.on_message = on_message
    try:
        await asyncio.wait_for(client.connect(parts.hostname, parts.port, version=MQTTv311), 10)
    except BaseException:
        await client.disconnect()  # no reconnect attempts left behind
        raise
    return client, received


# --------------------------------------------------------------------------- tests


def test_free_port_is_loopback_and_never_standard() -> None:
    for _ in range(20):
        port = free_port()
        assert port not in STANDARD_PORTS
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


@pytest.mark.asyncio
async def test_all_three_servers_round_trip_and_stop_cleanly(scratch: Path) -> None:
    data_dir = scratch / "data"
    started = time.monotonic()
    async with EmbeddedServers(data_dir, fresh=True) as servers:
        _timing("cold start, all three", time.monotonic() - started)
        assert servers.postgres is not None
        assert servers.redis is not None
        assert servers.mqtt is not None
        assert servers.database_url
        assert servers.redis_url
        assert servers.mqtt_url
        for url in (servers.database_url, servers.redis_url, servers.mqtt_url):
            assert "@127.0.0.1:" in url or "//127.0.0.1:" in url
        ports = {servers.postgres.port, servers.redis.port, servers.mqtt.port}
        assert None not in ports
        assert not ports & STANDARD_PORTS
        postmaster = servers.postgres.pid
        assert postmaster is not None
        pids = {postmaster, *_children(postmaster), servers.redis.pid, servers.mqtt.pid}
        assert None not in pids

        # PostgreSQL through asyncpg
        conn = await asyncpg.connect(_asyncpg_dsn(servers.database_url))
        try:
            assert await conn.fetchval("SELECT 1") == 1
            assert await conn.fetchval("SELECT current_database()") == "wuye"
            assert await conn.fetchval("SHOW server_encoding") == "UTF8"
        finally:
            await conn.close()

        # Redis through redis-py
        client = aioredis.Redis.from_url(servers.redis_url)
        try:
            assert await client.ping() is True
            await client.set("wuye:test", "物业")
            assert (await client.get("wuye:test")).decode() == "物业"
        finally:
            await client.aclose()

        # MQTT 3.1.1 through gmqtt: credentials required, round trip, persistent session.
        password = urlsplit(servers.mqtt_url).password
        wrong_password_url = servers.mqtt_url.replace(f":{password}@", ":nope@")
        with pytest.raises(MQTTConnectError):
            await _mqtt_client(wrong_password_url, "bad")
        anonymous_url = f"mqtt://127.0.0.1:{servers.mqtt.port}"
        with pytest.raises(MQTTConnectError):
            await _mqtt_client(anonymous_url, "anon")

        sub_id = f"sub-{uuid.uuid4().hex[:8]}"
        subscriber, received = await _mqtt_client(servers.mqtt_url, sub_id, clean_session=False)
        subacked = asyncio.Event()
        subscriber.on_subscribe = lambda *_: subacked.set()
        subscriber.subscribe("wuye/test/#", qos=1)
        await asyncio.wait_for(subacked.wait(), 5)
        publisher, _ = await _mqtt_client(servers.mqtt_url, f"pub-{uuid.uuid4().hex[:8]}")
        publisher.publish("wuye/test/alarm", b'{"level": "critical"}', qos=1)
        topic, payload = await asyncio.wait_for(received.get(), 5)
        assert (topic, json.loads(payload)) == ("wuye/test/alarm", {"level": "critical"})

        # An authenticated, non-clean session keeps its subscription and queues QoS 1
        # messages while the client is away (amqtt would drop an anonymous one).
        await subscriber.disconnect()
        # Let the broker process the DISCONNECT: a message broadcast before that goes to the
        # closing connection and is lost (no broker-side signal to wait for).
        await asyncio.sleep(1.0)
        publisher.publish("wuye/test/queued", b"while away", qos=1)
        await asyncio.sleep(0.3)
        resumed, queued = await _mqtt_client(servers.mqtt_url, sub_id, clean_session=False)
        topic, payload = await asyncio.wait_for(queued.get(), 5)
        assert (topic, payload) == ("wuye/test/queued", b"while away")
        await resumed.disconnect()
        await publisher.disconnect()

        started_stop = time.monotonic()
    _timing("stop, all three", time.monotonic() - started_stop)
    assert not any((servers.database_url, servers.redis_url, servers.mqtt_url))
    _assert_all_gone({p for p in pids if p is not None}, {p for p in ports if p is not None}, data_dir)


@pytest.mark.asyncio
async def test_restart_keeps_data_and_fresh_wipes_it(scratch: Path) -> None:
    data_dir = scratch / "data"

    async with EmbeddedServers(data_dir, mqtt=True) as first:
        assert first.postgres is not None
        assert first.postgres.cold_start
        assert first.database_url
        assert first.redis_url
        assert first.mqtt_url
        conn = await asyncpg.connect(_asyncpg_dsn(first.database_url))
        await conn.execute("CREATE TABLE estate (id int PRIMARY KEY, name text NOT NULL)")
        await conn.execute("INSERT INTO estate VALUES (1, '翠湖花园')")
        await conn.close()
        r = aioredis.Redis.from_url(first.redis_url)
        await r.set("kept", "yes")
        await r.aclose()
        first_mqtt_url = first.mqtt_url

    began = time.monotonic()
    async with EmbeddedServers(data_dir) as second:
        _timing("warm start, all three", time.monotonic() - began)
        assert second.postgres is not None
        assert not second.postgres.cold_start
        assert second.database_url
        assert second.redis_url
        assert second.mqtt_url
        conn = await asyncpg.connect(_asyncpg_dsn(second.database_url))
        assert await conn.fetchval("SELECT name FROM estate WHERE id = 1") == "翠湖花园"
        await conn.close()
        r = aioredis.Redis.from_url(second.redis_url)
        assert await r.get("kept") == b"yes"
        await r.aclose()
        # Same password across restarts (the port may differ).
        assert second.mqtt_url.split("@")[0] == first_mqtt_url.split("@")[0]
        client, _ = await _mqtt_client(second.mqtt_url, "after-restart")
        await client.disconnect()

    began = time.monotonic()
    with EmbeddedServers(data_dir, fresh=True, mqtt=False) as third:  # the sync form
        _timing("cold start (fresh), postgres+redis", time.monotonic() - began)
        assert third.mqtt_url is None
        assert third.database_url
        assert third.redis_url
        conn = await asyncpg.connect(_asyncpg_dsn(third.database_url))
        assert await conn.fetchval("SELECT to_regclass('estate')") is None
        await conn.close()
        r = aioredis.Redis.from_url(third.redis_url)
        assert await r.get("kept") is None
        await r.aclose()
    assert (data_dir / "mqtt" / "password").exists()  # fresh only wipes the servers it starts
    _assert_all_gone(set(), set(), data_dir)


def test_postgres_left_running_by_a_crash_is_stopped_on_next_start(scratch: Path) -> None:
    crashed = EmbeddedPostgres()
    crashed.start(scratch)
    stale_pid, stale_port = crashed.pid, crashed.port
    assert stale_pid is not None
    assert stale_port is not None
    # The owning process "crashes": nothing calls stop(), and the server keeps running.
    del crashed

    began = time.monotonic()
    pg = EmbeddedPostgres()
    try:
        pg.start(scratch)
        _timing("warm start, postgres after crash", time.monotonic() - began)
        assert not pg.cold_start
        assert pg.pid is not None
        assert pg.pid != stale_pid
        assert not _alive(stale_pid)
        assert not _port_open(stale_port)
    finally:
        pg.stop()
    pg.stop()  # idempotent
    _assert_all_gone({stale_pid}, {stale_port}, scratch)


def test_a_taken_port_fails_with_a_clear_error_and_leaves_nothing_running(scratch: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]
        for server, needle in (
            (EmbeddedRedis(), "redis-server exited"),
            (EmbeddedBroker(), "mqtt broker exited"),
            (EmbeddedPostgres(), "postgres exited"),
        ):
            with pytest.raises(EmbeddedServerError, match=needle) as caught:
                server.start(scratch, port=taken, timeout=20)
            assert "in use" in str(caught.value).lower() or "address" in str(caught.value).lower()
            assert server.pid is None
            assert server.url is None
    _assert_all_gone(set(), set(), scratch)


def test_data_dir_ancestors_locked_down_between_runs(scratch: Path) -> None:
    """What a concurrent pytest session does to /tmp/pytest-of-root: chmod 0700 an ancestor
    while the server runs and between runs. Stop and the next start must still work.
    (As another user the server runs as that user and the lock-out cannot happen; the
    test then checks only that stop and restart work.)"""
    locked = scratch / "locked"
    locked.mkdir(mode=0o700)
    pg = EmbeddedPostgres()
    pg.start(locked)
    try:
        locked.chmod(0o700)
        scratch.chmod(0o700)
        pg.stop()
        assert not _port_open(pg.port or 0)
        locked.chmod(0o700)
        pg.start(locked)
        assert pg.pid is not None
        locked.chmod(0o700)
    finally:
        pg.stop()
    assert not (locked / "postgres.initdb").exists()


@pytest.mark.asyncio
async def test_serve_command_stops_everything_on_sigterm(scratch: Path) -> None:
    data_dir = scratch / "data"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "backend.embedded",
        "serve",
        "--data-dir",
        str(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=PROJECT_ROOT,
    )
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 60)
        urls = json.loads(line)
        ports = {int(u.rsplit(":", 1)[1].split("/")[0]) for u in urls.values()}
        assert all(_port_open(p) for p in ports)
        postmaster = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        servers = {
            postmaster,
            json.loads((data_dir / "redis" / "redis.pid").read_text())["pid"],
            json.loads((data_dir / "mqtt" / "broker.pid").read_text())["pid"],
        }
        assert all(_alive(p) for p in servers)
        # PostgreSQL's own children come and go (a startup process ends once recovery is
        # done): they must be gone afterwards, but need not all be alive at this instant.
        pids = servers | set(_children(postmaster))

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 128 + signal.SIGTERM
    finally:
        if proc.returncode is None:  # a failed assertion above: still stop it cleanly
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    _assert_all_gone(pids, ports, data_dir)
