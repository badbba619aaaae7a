"""What the investigation routes answer is what their route table entries declare."""

from __future__ import annotations

from core.security.permissions import Role
from gateway.investigations.routes import ROUTES
from tests.conftest import Gateway
from tests.gateway.investigations.test_dispatch import orchestrator  # noqa: F401 - fixture
from tests.gateway.system.test_contracts import conforms


async def test_investigation_routes_answer_as_declared(orchestrator: Gateway) -> None:  # noqa: F811
    gateway = orchestrator
    analyst = await gateway.user(Role.ANALYST, "ana")
    client = gateway.client
    dispatch = "/api/v1/orchestrator/dispatch"
    sent = {"agent": "spec-agent", "method": "sleep", "params": {"seconds": 0, "label": "x"}}
    done = await conforms(
        ROUTES, "POST", dispatch, await client.post(dispatch, json=sent, headers=analyst)
    )
    assert done["status"] == "ok"
    history = "/api/v1/orchestrator/history"
    page = await conforms(ROUTES, "GET", history, await client.get(history, headers=analyst))
    assert [d["id"] for d in page["items"]] == [done["id"]]

    investigate = "/api/v1/agents/investigate"
    asked = {"iocs": [{"type": "ip", "value": "203.0.113.9"}], "priority": "high"}
    accepted = await conforms(
        ROUTES, "POST", investigate, await client.post(investigate, json=asked, headers=analyst)
    )
    # Queued, or already running on a free slot of an empty queue (test_runner.py).
    assert accepted["status"] in {"queued", "running"}
    assert accepted["priority"] == "high"
    one = "/api/v1/investigations/{investigation_id}"
    found = await conforms(
        ROUTES,
        "GET",
        one,
        await client.get(one.format(investigation_id=accepted["id"]), headers=analyst),
    )
    assert found["subject"]["iocs"] == [{"type": "ip", "value": "203.0.113.9"}]
    listed = "/api/v1/investigations"
    page = await conforms(
        ROUTES, "GET", listed, await client.get(f"{listed}?priority=high", headers=analyst)
    )
    assert [i["id"] for i in page["items"]] == [accepted["id"]]
