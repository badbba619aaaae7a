"""The network agent in process: an ACP server without auth, over the shipped ATT&CK index."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agents.acp.server import AgentServer
from agents.network.agent import Network
from agents.runtime.specialist import AgentDeps, build_server
from core.llm import LLMBackend
from core.settings import Settings
from tools.attack import AttackKB


@pytest.fixture(scope="module")
def kb() -> AttackKB:
    return AttackKB.load()


def network_server(
    kb: AttackKB, data_dir: Path, llm: LLMBackend | None = None, **settings: Any
) -> AgentServer:
    config = Settings(data_dir=data_dir, **settings)
    return build_server(Network(AgentDeps(settings=config, attack=kb, llm=llm)), config, None)


@pytest.fixture
def server(kb: AttackKB, tmp_path: Path) -> AgentServer:
    return network_server(kb, tmp_path)


async def rpc(server: AgentServer, params: Any, method: str = "analyze_network") -> Any:
    """The JSON-RPC reply to one request (``result`` or ``error``)."""
    frame: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "id": 1}
    if params is not None:
        frame["params"] = params
    reply = await server.dispatch(json.dumps(frame))
    assert reply is not None
    return json.loads(reply)


async def analyse(server: AgentServer, params: Any) -> dict[str, Any]:
    reply = await rpc(server, params)
    assert "result" in reply, reply
    result: dict[str, Any] = reply["result"]
    return result
