"""EDR routes through a real product's connector, against its protocol-faithful fake: the
inventory from Defender merged with the logs, isolate and unisolate (pending, then finished by
the product), a rate limit (429 with Retry-After) and an outage (503), never sent twice."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.security.permissions import Role
from core.settings import Settings
from gateway.keys import EDR
from tests.conftest import Gateway, make_settings, start_gateway
from tests.fakes.edr_apis import FakeDefender
from tests.gateway.edr.test_edr import LOGS, act, endpoint_id, endpoints, ingest, rows, set_mode

TENANT = "8c1b2f4e-0000-4000-8000-000000000001"
CLIENT = "2f9a6c1d-0000-4000-8000-000000000002"
SECRET = "not-a-real-secret-7c1e"


@pytest.fixture
async def defender(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[Gateway, FakeDefender, dict[str, str]]]:
    async with FakeDefender(tenant_id=TENANT, client_id=CLIENT, client_secret=SECRET) as mde:
        mde.add_machine("ws-042.corp.example", last_ip="10.1.2.42")
        mde.add_machine("lt-007.corp.example", last_ip="10.1.5.7", os_platform="Windows10")
        config = tmp_path / "edr.yaml"
        config.write_text(
            "connectors:\n"
            "  - name: mde\n"
            "    product: defender\n"
            f"    tenant_id: {TENANT}\n"
            f"    client_id: {CLIENT}\n"
            "    client_secret_env: AURORA_TEST_MDE_SECRET\n"
            f"    base_url: {mde.base_url}\n"
            f"    login_url: {mde.base_url}\n"
            "    max_retry_after_seconds: 0\n"
        )
        monkeypatch.setenv("AURORA_TEST_MDE_SECRET", SECRET)
        client = await start_gateway(
            make_settings(
                settings.data_dir, settings.effective_database_url, edr_connectors_file=config
            )
        )
        try:
            gateway = Gateway(client)
            await ingest(gateway, await gateway.user(Role.ANALYST), LOGS)
            await gateway.app[EDR].refresh()
            await set_mode(gateway, "active")
            yield gateway, mde, await gateway.user(Role.RESPONDER, "rita")
        finally:
            await client.close()


async def test_isolate_and_release_through_defender(
    defender: tuple[Gateway, FakeDefender, dict[str, str]],
) -> None:
    gateway, mde, rita = defender
    page = await endpoints(gateway, rita)
    by_name = {e["hostname"]: e for e in page["items"]}
    assert sorted(by_name) == ["lt-007", "srv-db01", "ws-042"]
    # the host in both the logs and Defender is one endpoint, managed by Defender
    ws = by_name["ws-042"]
    assert (ws["connector"], ws["native_id"]) == (
        "mde",
        FakeDefender.machine_id("ws-042.corp.example"),
    )
    assert (ws["log_events"], ws["state"]) == (3, "online")
    # with a real product configured, the lab does not adopt hosts only the logs know
    assert (by_name["srv-db01"]["connector"], by_name["srv-db01"]["source"]) == (None, "telemetry")
    assert by_name["lt-007"]["log_events"] == 0
    ident = ws["id"]

    status, body, _ = await act(gateway, rita, ident, "isolate", comment="IR-88 isolate")
    assert status == 200, body
    action = body["action"]
    assert (action["status"], action["connector"]) == ("executed", "mde")
    assert body["endpoint"]["state"] == "isolating"
    assert action["native_action_id"] in mde.actions
    assert mde.actions[action["native_action_id"]]["requestorComment"] == "IR-88 isolate"
    assert mde.write_count() == 1
    # the product finishes it; the poll sees it
    mde.set_action_status(action["native_action_id"], "Succeeded")
    assert await gateway.app[EDR].poll() == 1
    assert await gateway.app[EDR].poll() == 0
    detail = await (await gateway.client.get(f"/api/v1/edr/endpoints/{ident}", headers=rita)).json()
    assert detail["state"] == "isolated"
    assert detail["recent_actions"][0]["status"] == "succeeded"

    status, body, _ = await act(gateway, rita, ident, "unisolate")
    assert (status, body["action"]["status"]) == (200, "executed"), body
    mde.set_action_status(body["action"]["native_action_id"], "Succeeded")
    await gateway.app[EDR].poll()
    await gateway.app[EDR].refresh()
    detail = await (await gateway.client.get(f"/api/v1/edr/endpoints/{ident}", headers=rita)).json()
    assert detail["state"] == "online"
    assert mde.write_count() == 2


async def test_rate_limit_and_outage_are_their_codes_and_never_resent(
    defender: tuple[Gateway, FakeDefender, dict[str, str]],
) -> None:
    gateway, mde, rita = defender
    ident = await endpoint_id(gateway, rita, "ws-042")
    mde.rate_limit(1, retry_after="7")
    status, body, headers = await act(gateway, rita, ident, "scan")
    assert (status, body["error"]["code"]) == (429, "AURORA-4290"), body
    assert headers["Retry-After"] == "7"
    assert body["error"]["detail"]["connector"] == "mde"
    assert SECRET not in str(body)
    # the quota is back, the product is down
    mde.fail(503, 1)
    status, body, headers = await act(gateway, rita, ident, "isolate")
    assert (status, body["error"]["code"]) == (503, "AURORA-5030"), body
    assert "Traceback" not in str(body)
    assert mde.write_count() == 0
    records = await rows(gateway)
    assert [(r.action, r.status) for r in records] == [("scan", "failed"), ("isolate", "failed")]
    assert [r.detail["error"]["code"] for r in records] == ["AURORA-4290", "AURORA-5030"]
    # a failed inventory is reported in the stats, and keeps the endpoints as they were
    mde.fail(503, 1)
    await gateway.app[EDR].refresh()
    stats = await (await gateway.client.get("/api/v1/edr/stats", headers=rita)).json()
    mde_status = next(c for c in stats["connectors"] if c["name"] == "mde")
    assert mde_status["error"].startswith("AURORA-5030")
    assert stats["endpoints_by_connector"]["mde"] == 2
    assert stats["actions_by_connector"] == {"mde": {"failed": 2}}
