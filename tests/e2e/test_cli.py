"""The ``aurora`` commands that need a process of their own: the gateway alone on a database
that must be migrated first, the refusals before anything starts (a weak admin password, taken
ports), and the parser, which loads nothing of the platform. ``aurora up`` itself, and the
commands used beside it, are in test_platform."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from agents.catalog import SPECIALISTS
from core.db.migrate import head_revision
from tests.e2e.aurora import Platform, aurora_command, database_url, login, run
from tests.ports import free_ports


def test_the_gateway_alone_serves_a_migrated_database(
    env: dict[str, str], platforms: list[Platform]
) -> None:
    refused = run(env, "gateway")
    assert refused.returncode == 2
    assert "aurora db upgrade" in refused.stderr

    upgraded = run(env, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"revision {head_revision(database_url(env))}" in upgraded.stdout
    current = run(env, "db", "current")
    assert "(current)" in current.stdout
    created = run(
        env,
        *("user", "create", "bob", "--role", "analyst", "--password-stdin"),
        stdin="bob's long password\n",
    )
    assert created.returncode == 0, created.stderr

    gateway = Platform(env, "gateway")
    platforms.append(gateway)
    assert gateway.url == f"http://127.0.0.1:{env['AURORA_PORT']}"
    assert any("AuroraSOC gateway listening on" in line for line in gateway.lines)
    login(gateway.url, "bob", "bob's long password")
    assert gateway.stop() == 0
    assert any("aurora: shutting down" in line for line in gateway.lines)


def test_weak_admin_password_is_refused(env: dict[str, str]) -> None:
    refused = run({**env, "AURORA_ADMIN_PASSWORD": "pw-4Gx9"}, "up")
    assert refused.returncode == 1
    assert "AURORA_ADMIN_PASSWORD" in refused.stderr
    assert "pw-4Gx9" not in refused.stderr  # the password is never echoed


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

    # All at once: each waits a moment for the port to come free before it reports it. Each
    # has ports of its own besides the busy one: two checks probing the same free port at the
    # same moment would see it taken.
    def own(case_env: dict[str, str]) -> dict[str, str]:
        ports = {
            "AURORA_PORT": str(free_ports()),
            "AURORA_MCP_PORT": str(free_ports()),
            base: str(free_ports(len(SPECIALISTS))),
        }
        return {**env, **ports, **case_env}

    with ThreadPoolExecutor(len(cases)) as pool:
        outcomes = list(pool.map(lambda case: run(own(case[1]), *case[0]), cases))
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
COMMAND_MODULES = ("gateway.launcher", "gateway.admin", "gateway.demo", "gateway.supervisor")
"""Where the commands live: each is imported when one of its commands runs, not to parse."""


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
build_parser().parse_args(["user", "create", "bob", "--role", "analyst"])
heavy, commands = {HEAVY_MODULES!r}, {COMMAND_MODULES!r}
print(sorted(
    m for m in sys.modules
    if m.split(".")[0] in heavy or m in commands or m.split(".")[0] in ("agents", "pydantic")
))
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
