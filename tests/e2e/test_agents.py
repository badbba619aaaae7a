"""Specialist agents as real processes on real ports: compliance, faults, kill and restart."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from agents.acp.client import HandoffClient, RetryPolicy
from agents.acp.registry import AgentRegistry
from core.errors import ServiceUnavailable
from core.security.tokens import TokenService
from core.settings import Settings
from tests.e2e.aurora import aurora_command
from tests.ports import free_port
from tests.waiting import eventually

SECRET = "e2e-agents-secret-e2e-agents-secret-0123456789"


def agent_env(data_dir: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("AURORA_")}
    clean.update(AURORA_DATA_DIR=str(data_dir), AURORA_JWT_SECRET=SECRET)
    return clean


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return agent_env(tmp_path / "var")


def agent_token() -> str:
    settings = Settings(jwt_secret=SECRET)
    return TokenService.from_settings(settings).issue("e2e", token_type="agent").token


class AgentProcess:
    def __init__(self, env: dict[str, str], name: str, port: int) -> None:
        self.env, self.name, self.port = env, name, port
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [*aurora_command(), "agent", "run", self.name, "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if "listening on ws://" in line:
                return
        raise AssertionError(f"agent {self.name} did not start")

    def stop(self, signum: int = signal.SIGTERM) -> int:
        assert self.process is not None
        self.process.send_signal(signum)
        code = self.process.wait(timeout=20)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def running(env: dict[str, str]) -> Iterator[AgentProcess]:
    agent = AgentProcess(env, "threat_intel", free_port())
    agent.start()
    yield agent
    if agent.process is not None and agent.process.poll() is None:
        agent.stop(signal.SIGKILL)


@pytest.fixture(scope="module")
def threat_intel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentProcess]:
    """One threat_intel agent for the tests that only talk to it."""
    yield from running(agent_env(tmp_path_factory.mktemp("agent") / "var"))


@pytest.fixture
def own_threat_intel(env: dict[str, str]) -> Iterator[AgentProcess]:
    """A threat_intel agent of the test's own, which it may kill."""
    yield from running(env)


async def exchange(url: str, frames: list[str]) -> list[Any]:
    async with connect(url, additional_headers={"Authorization": f"Bearer {agent_token()}"}) as ws:
        replies = []
        for frame in frames:
            await ws.send(frame)
            replies.append(json.loads(await asyncio.wait_for(ws.recv(), 10)))
        return replies


async def test_jsonrpc_compliance_against_a_live_agent(threat_intel: AgentProcess) -> None:
    replies = await exchange(
        threat_intel.url,
        [
            '{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',
            '{"jsonrpc": "2.0", "method": 1, "params": "bar"}',
            "[]",
            "[1]",
            "[1,2,3]",
            '{"jsonrpc": "2.0", "method": "foobar", "id": "1"}',
            '[{"jsonrpc": "2.0", "method": "agent.health", "id": "h"},'
            ' {"jsonrpc": "2.0", "method": "agent.health"}, {"foo": "boo"}]',
            '{"jsonrpc": "2.0", "method": "analyze_threat", "params": {"iocs": 5}, "id": 9}',
        ],
    )
    invalid = {
        "jsonrpc": "2.0",
        "error": {"code": -32600, "message": "Invalid Request"},
        "id": None,
    }
    assert replies[0] == {
        "jsonrpc": "2.0",
        "error": {"code": -32700, "message": "Parse error"},
        "id": None,
    }
    assert replies[1] == invalid
    assert replies[2] == invalid
    assert replies[3] == [invalid]
    assert replies[4] == [invalid] * 3
    assert replies[5]["error"]["code"] == -32601
    assert [r["id"] for r in replies[6]] == ["h", None]
    assert replies[6][0]["result"]["agent"] == "threat_intel"
    assert replies[7]["error"]["code"] == -32602


async def test_refuses_connections_without_a_platform_token(threat_intel: AgentProcess) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(threat_intel.url):
            pass
    assert refused.value.response.status_code == 401


async def test_kill_and_restart_with_the_circuit_breaker(own_threat_intel: AgentProcess) -> None:
    threat_intel = own_threat_intel
    client = HandoffClient(
        registry=AgentRegistry({"threat_intel": (threat_intel.url,)}),
        sender="e2e",
        token=agent_token,
        breaker_threshold=2,
        breaker_reset_after=0.5,
        retry=RetryPolicy(attempts=2, base_delay=0.05, max_delay=0.1),
        startup_grace=0,  # a killed agent is dead at once, not restarting
    )
    params = {"iocs": [{"type": "ip", "value": "45.33.32.156"}]}
    try:
        first = await client.call("threat_intel", "analyze_threat", params)
        assert first["iocs"][0]["value"] == "45.33.32.156"

        threat_intel.stop(signal.SIGKILL)
        with pytest.raises(ServiceUnavailable) as down:
            await client.call("threat_intel", "analyze_threat", params)
        assert down.value.code == "AURORA-5030"
        assert client.breaker_state("threat_intel") == "open"
        with pytest.raises(ServiceUnavailable) as fast:
            await client.call("threat_intel", "agent.health")
        assert fast.value.detail["reason"] == "circuit open"

        threat_intel.start()
        await eventually(lambda: client.breaker_state("threat_intel") == "half_open")
        again = await client.call("threat_intel", "analyze_threat", params)
        assert again["iocs"] == first["iocs"]
        assert client.breaker_state("threat_intel") == "closed"
    finally:
        await client.close()
    assert threat_intel.stop() == 0  # SIGTERM: a clean shutdown


def test_agent_list_and_token(env: dict[str, str]) -> None:
    listed = subprocess.run(
        [*aurora_command(), "agent", "list"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert re.search(r"^threat_intel\s+ws://127\.0\.0\.1:8101$", listed.stdout, re.M)
    token = subprocess.run(
        [*aurora_command(), "agent", "token", "--subject", "ops"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    claims = TokenService.from_settings(Settings(jwt_secret=SECRET)).verify(
        token, token_type="agent"
    )
    assert claims.subject == "ops"
    unknown = subprocess.run(
        [*aurora_command(), "agent", "run", "nobody"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert unknown.returncode == 2
    assert "no agent named 'nobody'" in unknown.stderr


if sys.platform == "win32":  # pragma: no cover
    pytestmark = pytest.mark.skip("POSIX signals")
