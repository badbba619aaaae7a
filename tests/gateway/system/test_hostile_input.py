"""Hostile runtime-settings input is 422 AURORA-4220 and changes nothing; a change is committed
(and announced, and applied) only once its answer is built."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.keys import BUS, DATABASE
from gateway.system.models import RuntimeSetting, RuntimeSettingChange
from gateway.system.schemas import RuntimeSettingChangeRead
from tests.conftest import Gateway

# Every change here is refused (or fails before its commit): one gateway serves every case.
pytestmark = pytest.mark.asyncio(loop_scope="module")

URL = "/api/v1/settings/runtime"


async def rows(gateway: Gateway) -> tuple[int, int]:
    async with gateway.app[DATABASE].session() as db:
        settings = await db.execute(select(func.count()).select_from(RuntimeSetting))
        history = await db.execute(select(func.count()).select_from(RuntimeSettingChange))
        return int(settings.scalar_one()), int(history.scalar_one())


async def patch(gateway: Gateway, headers: dict[str, str], body: str) -> tuple[int, Any]:
    response = await gateway.client.patch(
        URL, data=body, headers={**headers, "Content-Type": "application/json"}
    )
    return response.status, await response.json()


@pytest.mark.parametrize(
    "body",
    [
        '{"approval_timeout_seconds": 1' + "0" * 24 + "}",
        '{"approval_timeout_seconds": ' + "1" * 4300 + "}",
        '{"approval_timeout_seconds": ' + "1" * 5000 + "}",
        '{"mode": "active", "x": ' + "[" * 100_000 + "]" * 100_000 + "}",
        '{"mode": "active", "x": ' + "[" * 256 + "]" * 256 + "}",
    ],
    ids=["25-digits", "4300-digits", "5000-digits", "100k-deep", "256-deep"],
)
async def test_hostile_bodies_are_422_and_change_nothing(
    shared_gateway: Gateway, shared_admin: dict[str, str], body: str
) -> None:
    status, reply = await patch(shared_gateway, shared_admin, body)
    assert (status, reply["error"]["code"]) == (422, "AURORA-4220"), reply
    assert await rows(shared_gateway) == (0, 0)
    response = await shared_gateway.client.get(URL, headers=shared_admin)
    assert (await response.json())["settings"]["mode"] == "dry_run"


async def test_nothing_is_committed_applied_or_announced_when_the_answer_cannot_be_built(
    shared_gateway: Gateway, shared_admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(cls: type[RuntimeSettingChangeRead], *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("the read model cannot be built")

    monkeypatch.setattr(RuntimeSettingChangeRead, "model_validate", classmethod(broken))
    with shared_gateway.app[BUS].subscribe("system.*") as events:
        status, reply = await patch(shared_gateway, shared_admin, '{"mode": "active"}')
        assert (status, reply["error"]["code"]) == (500, "AURORA-5000")
        assert reply["error"]["detail"] is None  # nothing of the failure leaks
        assert events.drain() == []
    monkeypatch.undo()
    assert await rows(shared_gateway) == (0, 0)
    response = await shared_gateway.client.get(URL, headers=shared_admin)
    assert response.headers["X-AuroraSOC-Mode"] == "dry_run"
    assert (await response.json())["settings"]["mode"] == "dry_run"
