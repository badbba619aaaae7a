"""The analysis tools over MCP, through the official client, on a real port."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp.client.client import Client

from core.settings import Settings
from tests.ports import free_port
from tests.waiting import eventually
from tools.mcp_server import run_mcp_server


@pytest.fixture
async def mcp_url(tmp_path: Path) -> AsyncIterator[str]:
    stop = asyncio.Event()
    urls: list[str] = []
    settings = Settings(data_dir=tmp_path, mcp_port=free_port())
    task = asyncio.create_task(run_mcp_server(settings, ready=urls.append, stop=stop))
    await eventually(lambda: urls or task.done(), what="the MCP server is ready")
    if not urls:
        await task  # it ended before it was ready: its error fails the test
    try:
        yield urls[0]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_tools_over_mcp(mcp_url: str) -> None:
    async with Client(mcp_url) as client:
        listed = {tool.name for tool in (await client.list_tools()).tools}
        assert listed == {
            "extract_indicators",
            "normalise_indicator",
            "decode",
            "attack_technique",
            "map_attack_techniques",
        }
        found = await client.call_tool(
            "extract_indicators", {"text": "C2 at hxxp://evil[.]example[.]com/x from 8.8.8.8"}
        )
        assert found.structured_content == {
            "result": [
                {"type": "ip", "value": "8.8.8.8", "subtype": "ipv4"},
                {"type": "domain", "value": "evil.example.com"},
                {"type": "url", "value": "http://evil.example.com/x"},
            ]
        }
        bad = await client.call_tool("normalise_indicator", {"type": "ip", "value": "999.1.1.1"})
        assert "error" in bad.structured_content
        revoked = await client.call_tool("attack_technique", {"technique_id": "T1162"})
        assert revoked.structured_content["technique"]["id"] == "T1647"
        decoded = await client.call_tool("decode", {"text": "aGVsbG8gd29ybGQ="})
        assert decoded.structured_content["result"][0]["text"] == "hello world"
        mapped = await client.call_tool(
            "map_attack_techniques", {"text": "spearphishing attachment with a macro", "limit": 1}
        )
        assert mapped.structured_content["result"][0]["technique_id"].startswith("T1566")
