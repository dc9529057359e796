"""`wuye demo` as a child process on embedded servers, for the end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

READY_SECONDS = 90.0
STOP_SECONDS = 30.0


def wuye_command() -> str:
    script = Path(sys.executable).parent / "wuye"
    found = str(script) if script.exists() else shutil.which("wuye")
    assert found, "the `wuye` console script is not installed in this environment"
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def processes_mentioning(text: str) -> dict[int, str]:
    """Live processes whose command line contains ``text`` (zombies have none)."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if text in cmdline:
                found[int(entry.name)] = cmdline.strip()
    return found


@dataclass
class Demo:
    process: subprocess.Popen[bytes]
    data_dir: Path
    log: Path
    info: dict[str, str]

    @property
    def api(self) -> str:
        return self.info["api"]

    @property
    def ws(self) -> str:
        return self.api.replace("http://", "ws://", 1)

    def endpoints(self) -> dict[str, tuple[str, int]]:
        """Every server the demo announced: the API and the three embedded ones."""
        found = {}
        for name in ("api", "mqtt", "database", "redis"):
            parts = urlsplit(self.info[name])
            assert parts.hostname, self.info[name]
            assert parts.port, self.info[name]
            found[name] = (parts.hostname, parts.port)
        return found

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    async def stop(self, sig: signal.Signals) -> int | None:
        """Send ``sig`` and wait up to STOP_SECONDS; the exit code, or None if it still runs."""
        self.process.send_signal(sig)
        try:
            return await asyncio.to_thread(self.process.wait, STOP_SECONDS)
        except subprocess.TimeoutExpired:
            return None

    def leftovers(self) -> dict[int, str]:
        return processes_mentioning(str(self.data_dir))

    def kill_everything(self) -> None:
        """After a failed test: stop the demo and whatever it left (only processes it started)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for pid in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def spawn_demo(data_dir: Path, *, port: int) -> Demo:
    """``wuye demo --port N --no-simulator`` with no ``WUYE_*_URL``, so on embedded servers."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("WUYE_")}
    env.update(WUYE_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    log = data_dir.parent / f"{data_dir.name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [wuye_command(), "demo", "--port", str(port), "--no-simulator"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # signals reach it only from the test
        )
    return Demo(process, data_dir, log, {})


async def start_demo(data_dir: Path, *, port: int) -> Demo:
    """A demo process, returned once it has written demo.json."""
    demo = spawn_demo(data_dir, port=port)
    process = demo.process
    demo_json = data_dir / "demo.json"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + READY_SECONDS
    while True:
        if process.poll() is not None:
            raise AssertionError(f"wuye demo exited with {process.returncode}:\n{demo.log_tail()}")
        with contextlib.suppress(OSError, ValueError):
            demo.info = json.loads(demo_json.read_text())
            return demo
        if loop.time() > deadline:
            demo.kill_everything()
            raise AssertionError(f"no {demo_json} within {READY_SECONDS:.0f}s:\n{demo.log_tail()}")
        await asyncio.sleep(0.2)
