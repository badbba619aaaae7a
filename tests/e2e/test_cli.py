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
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest

from agents.catalog import SPECIALISTS
from core.db.migrate import head_revision
from core.security.tokens import TokenService
from core.settings import Settings
from tests.ports import free_port, free_ports

BIN = Path(sys.executable).parent / "aurora"


def aurora_command() -> list[str]:
    return [str(BIN)] if BIN.exists() else [sys.executable, "-m", "gateway.cli"]


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
        AURORA_AGENT_BASE_PORT=str(free_ports(len(SPECIALISTS))),
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

    def wait_for(self, text: str, seconds: float = 120) -> str:
        """Read its output until a line containing ``text``, and return that line."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no line with {text!r} in:\n" + "".join(self.lines))


def start(env: dict[str, str], *args: str) -> Platform:
    process = subprocess.Popen(
        [*aurora_command(), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, as a shell gives a job
    )
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if match := re.search(r"(?:is up at|listening on) (http://127\.0\.0\.1:\d+)\s", line):
            return Platform(process, lines, match.group(1))
    process.kill()
    raise AssertionError("platform did not print its URL:\n" + "".join(lines))


def stop(platform: Platform, signum: int | None = signal.SIGTERM) -> int:
    """Send ``signum`` (None: none, it was sent) and wait for the exit code."""
    if signum is not None:
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
    assert platform.lines[0].startswith("Starting AuroraSOC: the gateway, 6 specialist agents")
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
    # The agents join as they start, each said, with how many of how many are ready.
    platform.wait_for(f"All {len(SPECIALISTS)} agents are ready")
    progress = [line for line in platform.lines if re.match(r"  agent \w+ ready \(\d/", line)]
    counts = [re.search(r"\((\d)/(\d)\)", line) for line in progress]
    assert [m.groups() if m else None for m in counts] == [
        (str(n), str(len(SPECIALISTS))) for n in range(1, len(SPECIALISTS) + 1)
    ]
    assert {line.split()[1] for line in progress} == set(SPECIALISTS)
    assert "still starting: " in progress[0]
    assert stop(platform) == 0
    assert any("shutting down" in line for line in platform.lines)
    assert any("[threat_intel]" in line and "shutting down" in line for line in platform.lines)
    assert not crash_reports(platform)

    # A second start keeps the admin (and its password), prints no new one, and Ctrl-C works.
    again = start({**env, "AURORA_ADMIN_PASSWORD": "ignored because admin exists"}, "up")
    platforms.append(again)
    assert again.password() is None
    status, _ = http(
        "POST", f"{again.url}/api/v1/auth/token", {"username": "admin", "password": password}
    )
    assert status == 200
    again.wait_for(f"All {len(SPECIALISTS)} agents are ready")
    # A terminal's Ctrl-C signals the whole foreground process group.
    os.killpg(again.process.pid, signal.SIGINT)
    assert stop(again, None) == 0
    assert any("[network]" in line and "shutting down" in line for line in again.lines)
    assert not crash_reports(again)


def crash_reports(platform: Platform) -> list[str]:
    """Lines of the supervisor reporting a child that exited or did not start."""
    return [
        line
        for line in platform.lines
        if "aurora.supervisor" in line or "starting it again" in line
    ]


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
    platform.wait_for(f"All {len(SPECIALISTS)} agents are ready")
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


@pytest.fixture
def busy() -> Iterator[int]:
    """A loopback port another program listens on."""
    # the third of six free ports: the cases below also name its neighbours
    port = free_ports(6) + 2
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))
        sock.listen()
        yield port


def test_busy_ports_are_one_clear_line_before_anything_starts(
    env: dict[str, str], busy: int
) -> None:
    database = Path(env["AURORA_DATA_DIR"]) / "aurora.db"
    base = "AURORA_AGENT_BASE_PORT"
    hunter_url = json.dumps({"hunter": [f"ws://127.0.0.1:{busy}"]})
    cases = [
        (("up",), {"AURORA_PORT": str(busy)}, "the gateway", "AURORA_PORT"),
        (("up",), {base: str(busy - 2)}, "agent network", base),  # the third specialist's
        (("up",), {"AURORA_MCP_PORT": str(busy)}, "the MCP server", "AURORA_MCP_PORT"),
        (("up",), {"AURORA_AGENT_URLS": hunter_url}, "agent hunter", "AURORA_AGENT_URLS"),
        (("gateway",), {"AURORA_PORT": str(busy)}, "the gateway", "AURORA_PORT"),
        (("agent", "run", "malware"), {base: str(busy - 1)}, "agent malware", base),
        (("agent", "run", "malware", "--port", str(busy)), {}, "agent malware", "--port"),
        (("mcp",), {"AURORA_MCP_PORT": str(busy)}, "the MCP server", "AURORA_MCP_PORT"),
        (("mcp", "--port", str(busy)), {}, "the MCP server", "--port"),
    ]
    # All at once: each waits a moment for the port to come free before it reports it.
    with ThreadPoolExecutor(len(cases)) as pool:
        outcomes = list(pool.map(lambda case: run({**env, **case[1]}, *case[0]), cases))
    for (args, _, what, setting), refused in zip(cases, outcomes, strict=True):
        assert refused.returncode == 2, (args, refused.stderr)
        assert refused.stderr.splitlines() == [
            f"aurora: port {busy} on 127.0.0.1 for {what} is already in use: stop what holds "
            f"it, or {'pass another' if setting == '--port' else 'set'} {setting}"
            + ("" if setting == "--port" else " to a free port")
        ], args
        assert not database.exists()  # nothing was started, not even the database

    # Two settings naming the same port: both named.
    clash = run({**env, "AURORA_MCP_PORT": env["AURORA_PORT"]}, "up")
    assert clash.returncode == 2
    assert clash.stderr.splitlines() == [
        f"aurora: port {env['AURORA_PORT']} is set for both the gateway (AURORA_PORT) and the "
        "MCP server (AURORA_MCP_PORT): change one of them"
    ]
    elsewhere = run({**env, "AURORA_HOST": "192.0.2.1"}, "gateway")
    assert elsewhere.returncode == 2
    assert "not an address of this machine (set AURORA_HOST)" in elsewhere.stderr


HEAVY_MODULES = ("aiohttp", "langgraph", "chdb", "sigma", "sqlalchemy", "alembic", "openai", "mcp")
"""What the parser must not load: the web stack, the graph, the stores, pySigma, the LLM and
MCP clients (and with them the agents)."""


def test_the_parser_loads_none_of_the_platform() -> None:
    """`aurora --help` and every command's parser import only what parsing needs (the lead
    time of every command: 4.4-5.7 s for `aurora --help` when they loaded the platform)."""
    probe = f"""
import contextlib, io, sys
from gateway.cli import build_parser
commands = [[], ["up"], ["demo"], ["gateway"], ["db", "upgrade"], ["user", "create"],
            ["user", "passwd"], ["agent", "run"], ["evidence", "export"], ["mcp"], ["token"]]
for command in commands:
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()):
        build_parser().parse_args([*command, "--help"])
heavy = {HEAVY_MODULES!r}
print(sorted(m for m in sys.modules if m.split(".")[0] in heavy or m.startswith("agents.runtime")))
"""
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert loaded.stdout.strip() == "[]", loaded.stdout
    # The same through the installed command.
    helped = subprocess.run(
        [*aurora_command(), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert helped.returncode == 0
    assert "user" in helped.stdout


def test_user_passwd_resets_unlocks_and_ends_sessions(
    env: dict[str, str], platforms: list[Platform]
) -> None:
    secret = "passwd-e2e-secret-passwd-e2e-secret-0123456789"
    env = {
        **env,
        "AURORA_JWT_SECRET": secret,
        "AURORA_AUTH_CACHE_TTL_SECONDS": "0",
        "AURORA_LOGIN_MAX_FAILURES": "2",
    }
    assert run(env, "db", "upgrade").returncode == 0
    first, second = "the first long password", "the second long password"
    created = run(
        env, "user", "create", "boss", "--role", "admin", "--password-stdin", stdin=f"{first}\n"
    )
    assert created.returncode == 0, created.stderr
    assert run(env, "user", "create", "svc", "--role", "service_agent").returncode == 0
    platform = start(env, "gateway")
    platforms.append(platform)
    api = f"{platform.url}/api/v1"

    def login(password: str) -> tuple[int, dict[str, Any]]:
        return http("POST", f"{api}/auth/token", {"username": "boss", "password": password})

    # A session that began before the reset (the token a login a minute ago gave).
    minted = run(env, "token", "boss").stdout.strip()
    boss_id = jwt.decode(minted, options={"verify_signature": False})["sub"]
    old = (
        TokenService.from_settings(Settings(jwt_secret=secret))  # type: ignore[arg-type]
        .issue(boss_id, now=datetime.now(UTC) - timedelta(minutes=1), claims={"username": "boss"})
        .token
    )
    assert http("GET", f"{api}/users/me", token=old)[0] == 200
    # Locked out by wrong passwords.
    assert [login("a wrong password")[0] for _ in range(2)] == [401, 401]
    assert login(first)[0] == 429

    # Refused resets change nothing.
    unknown = run(env, "user", "passwd", "nobody", "--password-stdin", stdin=f"{second}\n")
    assert (unknown.returncode, "Resource not found" in unknown.stderr) == (1, True)
    weak = run(env, "user", "passwd", "boss", "--password-stdin", stdin="short\n")
    assert (weak.returncode, "Validation error" in weak.stderr) == (1, True)
    service = run(env, "user", "passwd", "svc", "--password-stdin", stdin=f"{second}\n")
    assert (service.returncode, "service identity" in service.stderr) == (1, True)
    mismatch = asked(env, "user", "passwd", "boss", answers=[second, "not the same password"])
    assert mismatch.returncode == 1
    assert "passwords do not match" in mismatch.stderr
    assert http("GET", f"{api}/users/me", token=old)[0] == 200
    assert login(first)[0] == 429

    # Asked twice, without echo where there is a terminal (here there is none: from stdin).
    reset = asked(env, "user", "passwd", "boss", answers=[second, second])
    assert reset.returncode == 0, reset.stderr
    assert "every token issued to it before now is refused" in reset.stdout
    assert second not in reset.stdout + reset.stderr
    status, body = http("GET", f"{api}/users/me", token=old)
    assert (status, body["error"]["code"]) == (401, "AURORA-4012")
    assert login(first)[0] == 401
    status, body = login(second)  # unlocked
    assert status == 200, body
    status, me = http("GET", f"{api}/users/me", token=body["access_token"])
    assert (status, me["username"]) == (200, "boss")
    assert stop(platform) == 0


def asked(env: dict[str, str], *args: str, answers: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``aurora`` with no terminal (its own session), answering its prompts from stdin."""
    return subprocess.run(
        [*aurora_command(), *args],
        env=env,
        input="".join(f"{answer}\n" for answer in answers),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        start_new_session=True,
    )
