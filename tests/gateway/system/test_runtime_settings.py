from sqlalchemy import func, select

from core.security.permissions import Role
from gateway.keys import DATABASE, SETTINGS
from gateway.system.models import RuntimeSettingChange
from tests.conftest import Gateway, start_gateway


async def history_rows(gateway: Gateway) -> int:
    async with gateway.app[DATABASE].session() as db:
        query = select(func.count()).select_from(RuntimeSettingChange)
        return int((await db.execute(query)).scalar_one())


async def test_fresh_install_is_dry_run(gateway: Gateway, admin: dict[str, str]) -> None:
    response = await gateway.client.get("/api/v1/settings/runtime", headers=admin)
    body = await response.json()
    assert response.status == 200
    assert body["settings"]["mode"] == "dry_run"
    assert body["history"] == []
    assert body["updated_by"] is None
    assert response.headers["X-AuroraSOC-Mode"] == "dry_run"


async def test_change_is_recorded_and_mode_header_follows(gateway: Gateway) -> None:
    operator = await gateway.user(Role.OPERATOR, "oper")
    response = await gateway.client.patch(
        "/api/v1/settings/runtime",
        headers=operator,
        json={"mode": "monitor", "approval_timeout_seconds": 120},
    )
    body = await response.json()
    assert response.status == 200, body
    assert body["settings"]["mode"] == "monitor"
    assert body["settings"]["approval_timeout_seconds"] == 120
    assert body["updated_by"] == "oper"
    assert response.headers["X-AuroraSOC-Mode"] == "monitor"
    change = body["history"][0]
    assert change["changed_by"] == "oper"
    assert change["changes"] == {
        "mode": {"old": "dry_run", "new": "monitor"},
        "approval_timeout_seconds": {"old": 300, "new": 120},
    }
    # The header on any other response, including errors, follows the mode too.
    missing = await gateway.client.get("/api/v1/nope")
    assert missing.headers["X-AuroraSOC-Mode"] == "monitor"

    # Setting the same value again records nothing.
    same = await gateway.client.patch(
        "/api/v1/settings/runtime", headers=operator, json={"mode": "monitor"}
    )
    assert same.status == 200
    assert await history_rows(gateway) == 1


async def test_invalid_values_change_nothing(gateway: Gateway, admin: dict[str, str]) -> None:
    for payload, loc in [
        ({"mode": "yolo"}, ["body", "mode"]),
        ({"approval_timeout_seconds": 1}, ["body", "approval_timeout_seconds"]),
        ({"unknown_knob": 1}, ["body", "unknown_knob"]),
        ({}, ["body"]),
        (
            {"mode": "active", "max_concurrent_investigations": 0},
            ["body", "max_concurrent_investigations"],
        ),
    ]:
        response = await gateway.client.patch(
            "/api/v1/settings/runtime", headers=admin, json=payload
        )
        body = await response.json()
        assert response.status == 422, payload
        assert body["error"]["code"] == "AURORA-4220"
        assert loc in [d["loc"] for d in body["error"]["detail"]], body
        assert response.headers["X-AuroraSOC-Mode"] == "dry_run"
    assert await history_rows(gateway) == 0


async def test_mode_survives_restart(gateway: Gateway, admin: dict[str, str]) -> None:
    response = await gateway.client.patch(
        "/api/v1/settings/runtime", headers=admin, json={"mode": "active"}
    )
    assert response.status == 200
    client = await start_gateway(gateway.app[SETTINGS])
    try:
        fresh = await client.get("/api/v1/auth/providers")
        assert fresh.headers["X-AuroraSOC-Mode"] == "active"
    finally:
        await client.close()


async def test_metrics_exposition(gateway: Gateway) -> None:
    viewer = await gateway.user(Role.VIEWER)
    await gateway.client.get("/api/v1/users/me", headers=viewer)
    await gateway.client.get("/api/v1/does-not-exist/12345")
    response = await gateway.client.get("/metrics", headers=viewer)
    text = await response.text()
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    assert 'aurora_http_requests_total{method="GET",route="/api/v1/users/me",status="200"}' in text
    assert 'aurora_http_request_duration_seconds_bucket{le="0.005",method="GET"' in text
    assert 'route="unmatched",status="404"' in text
    assert "12345" not in text  # never raw paths or ids
    assert "does-not-exist" not in text
    unauthenticated = await gateway.client.get("/metrics")
    assert unauthenticated.status == 401
