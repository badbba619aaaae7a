"""The ``aurora`` command as a user runs it: real processes, real ports, real signals."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agents.catalog import SPECIALISTS
from core.db.migrate import head_revision

BIN = Path(sys.executable).parent / "aurora"


def aurora_command() -> list[str]:
    return [str(BIN)] if BIN.exists() else [sys.executable, "-m", "gateway.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def free_port_run(count: int) -> int:
    """The first of ``count`` consecutive free ports."""
    for _ in range(100):
        base = free_port()
        if base + count > 65_535:
            continue
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError("no run of free ports")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}
    clean.update(
        AURORA_DATA_DIR=str(tmp_path / "var"),
        AURORA_PORT=str(free_port()),
        AURORA_ARGON2_TIME_COST="1",
        AURORA_ARGON2_MEMORY_KIB="1024",
        AURORA_ARGON2_PARALLELISM="1",
        AURORA_ACCESS_LOG="false",
        AURORA_AGENT_BASE_PORT=str(free_port_run(len(SPECIALISTS))),
        AURORA_MCP_PORT=str(free_port()),
    )
    return clean


def run(
    env: dict[str, str], *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*aurora_command(), *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def env_settings_url(env: dict[str, str]) -> str:
    return f"sqlite+aiosqlite:///{env['AURORA_DATA_DIR']}/aurora.db"


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
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


class Platform:
    def __init__(self, process: subprocess.Popen[str], lines: list[str], url: str) -> None:
        self.process, self.lines, self.url = process, lines, url

    def password(self) -> str | None:
        for line in self.lines:
            if match := re.search(r"generated password: (\S+)", line):
                return match.group(1)
        return None


def start(env: dict[str, str], *args: str) -> Platform:
    process = subprocess.Popen(
        [*aurora_command(), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if match := re.search(r"(?:is up at|listening on) (http://127\.0\.0\.1:\d+)\s", line):
            return Platform(process, lines, match.group(1))
    process.kill()
    raise AssertionError("platform did not print its URL:\n" + "".join(lines))


def stop(platform: Platform, signum: int = signal.SIGTERM) -> int:
    platform.process.send_signal(signum)
    try:
        code = platform.process.wait(timeout=20)
    finally:
        if platform.process.poll() is None:
            platform.process.kill()
    assert platform.process.stdout is not None
    platform.lines.extend(platform.process.stdout.readlines())
    return code


@pytest.fixture
def platforms() -> Iterator[list[Platform]]:
    started: list[Platform] = []
    yield started
    for platform in started:
        if platform.process.poll() is None:
            platform.process.kill()
            platform.process.wait()
        if platform.process.stdout is not None:
            platform.process.stdout.close()


def test_up_bootstraps_serves_and_stops_cleanly(
    env: dict[str, str], platforms: list[Platform]
) -> None:
    platform = start(env, "up")
    platforms.append(platform)
    assert platform.url == f"http://127.0.0.1:{env['AURORA_PORT']}"
    password = platform.password()
    assert password
    assert len(password) >= 16
    status, body = http(
        "POST", f"{platform.url}/api/v1/auth/token", {"username": "admin", "password": password}
    )
    assert status == 200, body
    status, me = http("GET", f"{platform.url}/api/v1/users/me", token=body["access_token"])
    assert (status, me["username"], me["role"]) == (200, "admin", "admin")

    # `aurora token` mints a token the running gateway accepts (same key, from the data dir).
    minted = run(env, "token", "admin")
    assert minted.returncode == 0, minted.stderr
    status, me = http("GET", f"{platform.url}/api/v1/users/me", token=minted.stdout.strip())
    assert status == 200
    # the agents run beside it
    banner = next(line for line in platform.lines if "is up at" in line)
    assert f"{len(SPECIALISTS)} agent(s)" in banner
    assert stop(platform) == 0
    assert any("shutting down" in line for line in platform.lines)
    assert any("[threat_intel]" in line and "shutting down" in line for line in platform.lines)

    # A second start keeps the admin (and its password), prints no new one, and SIGINT works.
    again = start({**env, "AURORA_ADMIN_PASSWORD": "ignored because admin exists"}, "up")
    platforms.append(again)
    assert again.password() is None
    status, _ = http(
        "POST", f"{again.url}/api/v1/auth/token", {"username": "admin", "password": password}
    )
    assert status == 200
    assert stop(again, signal.SIGINT) == 0


def test_admin_from_environment(env: dict[str, str], platforms: list[Platform]) -> None:
    env = {**env, "AURORA_ADMIN_USERNAME": "chief", "AURORA_ADMIN_PASSWORD": "chief password 1"}
    platform = start(env, "up")
    platforms.append(platform)
    assert platform.password() is None
    status, body = http(
        "POST",
        f"{platform.url}/api/v1/auth/token",
        {"username": "chief", "password": "chief password 1"},
    )
    assert status == 200, body
    # Even a supervisor killed outright leaves no agent behind.
    first_agent = int(env["AURORA_AGENT_BASE_PORT"])
    assert port_open(first_agent)
    assert stop(platform, signal.SIGKILL) == -signal.SIGKILL
    deadline = time.monotonic() + 15
    while port_open(first_agent) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not port_open(first_agent)


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_db_user_and_gateway_commands(env: dict[str, str], platforms: list[Platform]) -> None:
    refused = run(env, "gateway")
    assert refused.returncode == 2
    assert "aurora db upgrade" in refused.stderr

    upgraded = run(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"revision {head_revision(env_settings_url(env))}" in upgraded.stdout
    current = run(env, "db", "current")
    assert "(current)" in current.stdout

    created = run(
        env,
        "user",
        "create",
        "bob",
        "--role",
        "analyst",
        "--password-stdin",
        stdin="bob's long password\n",
    )
    assert created.returncode == 0, created.stderr
    weak = run(
        env, "user", "create", "eve", "--role", "analyst", "--password-stdin", stdin="short\n"
    )
    assert weak.returncode == 1
    assert "Validation error" in weak.stderr
    duplicate = run(
        env,
        "user",
        "create",
        "bob",
        "--role",
        "viewer",
        "--password-stdin",
        stdin="another long password\n",
    )
    assert duplicate.returncode == 1
    assert "already exists" in duplicate.stderr
    service = run(env, "user", "create", "svc-intel", "--role", "service_agent")
    assert service.returncode == 0, service.stderr
    listed = run(env, "user", "list")
    assert re.search(r"^bob\s+analyst\s+yes", listed.stdout, re.M)
    assert "svc-intel" in listed.stdout
    assert "2 user(s)" in listed.stdout

    platform = start(env, "gateway")
    platforms.append(platform)
    status, _ = http(
        "POST",
        f"{platform.url}/api/v1/auth/token",
        {"username": "bob", "password": "bob's long password"},
    )
    assert status == 200
    # A service identity has no password: it cannot log in, but `aurora token` serves it.
    status, body = http(
        "POST",
        f"{platform.url}/api/v1/auth/token",
        {"username": "svc-intel", "password": "anything at all"},
    )
    assert (status, body["error"]["code"]) == (401, "AURORA-4012")
    token = run(env, "token", "svc-intel").stdout.strip()
    status, me = http("GET", f"{platform.url}/api/v1/users/me", token=token)
    assert (status, me["role"]) == (200, "service_agent")
    assert stop(platform) == 0

    deleted = run(env, "user", "delete", "bob")
    assert deleted.returncode == 0
    unknown = run(env, "token", "bob")
    assert unknown.returncode == 1
    assert "Resource not found" in unknown.stderr


def test_weak_admin_password_is_refused(env: dict[str, str]) -> None:
    refused = run({**env, "AURORA_ADMIN_PASSWORD": "short"}, "up")
    assert refused.returncode == 1
    assert "AURORA_ADMIN_PASSWORD" in refused.stderr
    assert "short" not in refused.stderr.replace("AURORA_ADMIN", "")
