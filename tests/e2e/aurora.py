"""The ``aurora`` command as a user runs it: real processes, real ports, real signals.

A process that serves (``aurora up``, ``aurora gateway``) is a :class:`Platform`: its output is
read as it comes, by a thread, so that it never blocks on a full pipe however long it runs, and a
test waits for a line of it (readiness), never for a time.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from agents.catalog import SPECIALISTS
from tests.ports import free_port, free_ports
from tests.waiting import until

BIN = Path(sys.executable).parent / "aurora"
STARTUP_SECONDS = 180.0
"""How long a platform may take to serve, or its agents to be ready: all of them import their
libraries at once, which takes a minute and more on a loaded two-core machine."""
URL = re.compile(r"^(?!\[)\S.*(?:is up at|listening on) ((?:http|ws)://127\.0\.0\.1:\d+)\s")
"""Where the process itself says it serves (``aurora up``'s banner, ``aurora gateway``'s or an
agent's line), never a child's line that ``aurora up`` relays (``[malware] ... listening on``):
its agents may be up before its gateway."""


def aurora_command() -> list[str]:
    return [str(BIN)] if BIN.exists() else [sys.executable, "-m", "gateway.cli"]


def aurora_env(data_dir: Path, **settings: str) -> dict[str, str]:
    """This process's environment without its ``AURORA_*`` settings: the platform's data in
    ``data_dir``, its ports free, cheap password hashing, no access log; then ``settings``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}
    clean.update(
        AURORA_DATA_DIR=str(data_dir),
        AURORA_PORT=str(free_port()),
        AURORA_ARGON2_TIME_COST="1",
        AURORA_ARGON2_MEMORY_KIB="1024",
        AURORA_ARGON2_PARALLELISM="1",
        AURORA_ACCESS_LOG="false",
        AURORA_AGENT_BASE_PORT=str(free_ports(len(SPECIALISTS))),
        AURORA_MCP_PORT=str(free_port()),
    )
    clean.update(settings)
    return clean


def database_url(env: dict[str, str]) -> str:
    return f"sqlite+aiosqlite:///{env['AURORA_DATA_DIR']}/aurora.db"


def run(
    env: dict[str, str], *args: str, stdin: str | None = None, own_session: bool = False
) -> subprocess.CompletedProcess[str]:
    """``aurora ARGS`` to its end; ``own_session``: without a terminal, as a script runs it."""
    return subprocess.run(
        [*aurora_command(), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        start_new_session=own_session,
    )


def http(
    method: str, url: str, body: dict[str, Any] | None = None, token: str | None = None
) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def login(url: str, username: str, password: str) -> str:
    status, body = http(
        "POST", f"{url}/api/v1/auth/token", {"username": username, "password": password}
    )
    assert status == 200, body
    return str(body["access_token"])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


class Platform:
    """One ``aurora`` process that serves, in its own process group (as a shell runs a job),
    and everything it has said so far (its standard error with its output)."""

    def __init__(self, env: dict[str, str], *args: str, wait: bool = True) -> None:
        """Start ``aurora ARGS``; ``wait``: until it says where it serves (otherwise call
        :meth:`serving`, so that several start at once)."""
        self.env = env
        self.process = subprocess.Popen(
            [*aurora_command(), *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._said = threading.Condition()
        self._ended = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.url = ""
        if wait:
            self.serving()

    def serving(self) -> str:
        """Wait until it says where it serves (an HTTP or WebSocket URL); that URL."""
        try:
            serving = URL.search(self.wait_for(URL))
        except AssertionError:
            self.close()
            raise
        assert serving is not None
        self.url = serving.group(1)
        return self.url

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._said:
                self.lines.append(line)
                self._said.notify_all()
        with self._said:
            self._ended = True
            self._said.notify_all()

    def wait_for(self, pattern: str | re.Pattern[str], seconds: float = STARTUP_SECONDS) -> str:
        """The first line it said that ``pattern`` matches (a regular expression, or text it
        contains), waiting up to ``seconds`` for it."""
        wanted = pattern if isinstance(pattern, re.Pattern) else re.compile(re.escape(pattern))
        seen = 0
        deadline = time.monotonic() + seconds
        with self._said:
            while True:
                for line in self.lines[seen:]:
                    if wanted.search(line):
                        return line
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if self._ended or left <= 0:
                    break
                self._said.wait(left)
        raise AssertionError(f"no line matching {wanted.pattern!r} in:\n" + "".join(self.lines))

    def password(self) -> str | None:
        """The admin password it generated, if it said one."""
        for line in self.lines:
            if match := re.search(r"generated password: (\S+)", line):
                return match.group(1)
        return None

    def crash_reports(self) -> list[str]:
        """Lines of the supervisor reporting a child that exited or did not start."""
        return [
            line
            for line in self.lines
            if "aurora.supervisor" in line or "starting it again" in line
        ]

    def stop(self, signum: int | None = signal.SIGTERM) -> int:
        """Send ``signum`` (None: none, it was sent) and wait for the exit code; everything it
        said is in :attr:`lines` then."""
        if signum is not None:
            self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout=60)
        finally:
            self.close()
        return code

    def close(self) -> None:
        """Kill it if it still runs, and stop reading it."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=30)
        if self.process.stdout is not None:
            self.process.stdout.close()


def no_agent_left(port: int) -> None:
    """Wait until nothing listens on ``port`` any more (an agent of a platform that ended)."""
    until(lambda: not port_open(port), within=30, what=f"port {port} closed")
