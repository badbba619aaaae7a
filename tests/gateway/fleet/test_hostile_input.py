"""Hostile fleet query input is 422 AURORA-4220, never an integer overflow in the driver."""

from __future__ import annotations

import pytest

from core.security.permissions import Role
from core.settings import Settings
from tests.conftest import Gateway, make_settings, start_gateway


@pytest.mark.parametrize(
    "offset", ["1" + "0" * 24, "2147483648", "1" * 4300, "1" * 5000], ids=lambda o: f"{len(o)}"
)
async def test_a_huge_tool_call_offset_is_422(settings: Settings, offset: str) -> None:
    configured = make_settings(
        settings.data_dir,
        settings.effective_database_url,
        agent_urls={"spec-agent": ["ws://127.0.0.1:9"]},  # configured; never called here
    )
    gateway = Gateway(await start_gateway(configured))
    try:
        viewer = await gateway.user(Role.VIEWER)
        url = "/api/v1/agents/spec-agent/tool-calls"
        response = await gateway.client.get(url, params={"offset": offset}, headers=viewer)
        body = await response.json()
        assert (response.status, body["error"]["code"]) == (422, "AURORA-4220"), body
        assert [d["loc"] for d in body["error"]["detail"]] == [["query", "offset"]]
        largest = await gateway.client.get(url, params={"offset": "2147483647"}, headers=viewer)
        assert (largest.status, (await largest.json())["items"]) == (200, [])
    finally:
        await gateway.client.close()
