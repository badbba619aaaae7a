"""The EDR service against a scripted connector: carry_out at most once per key (twice in a
row, twice at once, after a crash between the hand-over and the record), typed errors
recorded and raised, approvals decided while no service listened, the inventory's merge."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from core.db import Database
from core.db.base import utcnow
from core.errors import InternalError, NotFound, ValidationFailed
from core.events import EventBus
from core.guardrails import parse_policy
from core.runtime import SystemMode
from gateway.edr.models import EdrActionRecord, Endpoint
from gateway.edr.service import EdrService
from gateway.investigations import approvals
from gateway.keys import DATABASE
from tests.conftest import Gateway
from tools.edr.base import (
    ActionReceipt,
    ActionStatus,
    ConnectorEndpoint,
    EdrAction,
    EdrConnector,
    EdrRateLimited,
    EndpointState,
)


class Scripted(EdrConnector):
    """A connector that does what the test says and counts what it was asked."""

    product = "scripted"

    def __init__(self, name: str = "scripted") -> None:
        super().__init__(name)
        self.calls: list[tuple[EdrAction, str, str]] = []
        self.error: Exception | None = None
        self.gate: asyncio.Event | None = None
        self.entered = asyncio.Event()
        """Set once the connector holds a request."""
        self.listed = [
            ConnectorEndpoint(
                connector=name,
                native_id="n-1",
                hostname="ws-1",
                fqdn="ws-1.corp.example",
                ips=["10.0.0.1"],
                state=EndpointState.ONLINE,
                details={"agent": "7.1"},
            )
        ]
        self.closed = False

    async def inventory(self) -> list[ConnectorEndpoint]:
        return list(self.listed)

    async def act(
        self, action: EdrAction, endpoint: ConnectorEndpoint, *, comment: str
    ) -> ActionReceipt:
        self.calls.append((action, endpoint.native_id, comment))
        self.entered.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.error is not None:
            raise self.error
        return ActionReceipt(
            connector=self.name,
            action=action,
            native_id=endpoint.native_id,
            status=ActionStatus.SUCCEEDED,
            native_action_id=f"act-{len(self.calls)}",
        )

    async def status(self, receipt: ActionReceipt) -> ActionReceipt:
        return receipt

    async def aclose(self) -> None:
        self.closed = True


def service(
    database: Database,
    *connectors: EdrConnector,
    mode: SystemMode = SystemMode.ACTIVE,
    policy: str = "",
) -> EdrService:
    return EdrService(
        database=database,
        bus=EventBus(),
        connectors=connectors,
        policy=parse_policy(policy),
        mode=lambda: mode,
        approval_timeout=lambda: 300.0,
    )


@pytest.fixture
async def database(gateway: Gateway) -> Database:
    return gateway.app[DATABASE]


@pytest.fixture
async def scripted(database: Database) -> AsyncIterator[tuple[EdrService, Scripted]]:
    connector = Scripted()
    edr = service(database, connector)
    async with edr:
        await edr.refresh()
        yield edr, connector
    assert connector.closed


async def actions(database: Database) -> list[EdrActionRecord]:
    async with database.session() as db:
        return list(await db.scalars(select(EdrActionRecord).order_by(EdrActionRecord.id)))


async def carry(edr: EdrService, key: str, target: str = "ws-1") -> dict[str, Any]:
    return await edr.carry_out(
        action=EdrAction.ISOLATE,
        target=target,
        key=key,
        actor="playbook:malware-containment",
        reason="confirmed C2",
        approved_by="rita",
    )


async def test_carry_out_acts_once_per_key(
    scripted: tuple[EdrService, Scripted], database: Database
) -> None:
    edr, connector = scripted
    first = await carry(edr, "PBX-2026-00001/isolate#0", target="WS-1.corp.example")
    again = await carry(edr, "PBX-2026-00001/isolate#0")
    assert (first["status"], first["connector"], first["hostname"]) == (
        "succeeded",
        "scripted",
        "ws-1",
    )
    assert (first["replayed"], again["replayed"]) == (False, True)
    assert again["action_id"] == first["action_id"]
    assert connector.calls == [(EdrAction.ISOLATE, "n-1", "confirmed C2")]
    [row] = await actions(database)
    assert (row.key, row.approved_by, row.status) == (
        "PBX-2026-00001/isolate#0",
        "rita",
        "succeeded",
    )
    async with database.session() as db:
        endpoint = await db.scalar(select(Endpoint).where(Endpoint.hostname == "ws-1"))
    assert endpoint is not None
    assert endpoint.state == "isolated"


async def test_two_callers_with_one_key_act_once(
    scripted: tuple[EdrService, Scripted], database: Database
) -> None:
    edr, connector = scripted
    connector.gate = asyncio.Event()
    racing = {asyncio.create_task(carry(edr, "k-race")) for _ in range(2)}
    await connector.entered.wait()
    # one caller holds the product's answer; the other returns the action it recorded
    done, holding = await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
    replayed = done.pop().result()
    assert (replayed["replayed"], replayed["status"]) == (True, "requested")
    connector.gate.set()
    acted = await holding.pop()
    assert (acted["replayed"], acted["status"]) == (False, "succeeded")
    assert acted["action_id"] == replayed["action_id"]
    assert len(connector.calls) == 1
    assert len(await actions(database)) == 1


async def test_unknown_target_is_404_and_calls_nothing(
    scripted: tuple[EdrService, Scripted], database: Database
) -> None:
    edr, connector = scripted
    with pytest.raises(NotFound):
        await carry(edr, "k-1", target="ws-2")
    for key in ("", "k" * 201):  # never truncated into another action's key
        with pytest.raises(ValidationFailed):
            await carry(edr, key)
    assert connector.calls == []
    assert await actions(database) == []


async def test_connector_errors_are_recorded_then_raised(
    scripted: tuple[EdrService, Scripted], database: Database
) -> None:
    edr, connector = scripted
    connector.error = EdrRateLimited("scripted", retry_after=9)
    with pytest.raises(EdrRateLimited) as limited:
        await carry(edr, "k-limited")
    assert limited.value.headers == {"Retry-After": "9"}
    connector.error = RuntimeError("password=hunter2 at /secret/path")
    with pytest.raises(InternalError) as broken:
        await carry(edr, "k-broken")
    assert broken.value.detail == {"connector": "scripted", "reason": "RuntimeError"}
    rows = await actions(database)
    assert [(r.key, r.status) for r in rows] == [("k-limited", "failed"), ("k-broken", "failed")]
    assert rows[0].detail["error"]["code"] == "AURORA-4290"
    assert "hunter2" not in str(rows[1].detail)
    # a failed key is not carried out again
    connector.error = None
    assert (await carry(edr, "k-limited"))["status"] == "failed"
    assert len(connector.calls) == 2


async def test_an_attempt_that_died_is_unknown_and_never_repeated(
    scripted: tuple[EdrService, Scripted], database: Database
) -> None:
    edr, connector = scripted
    connector.gate = asyncio.Event()
    task = asyncio.create_task(carry(edr, "k-crash"))
    await connector.entered.wait()
    task.cancel()  # the process dies while the product holds the request
    with pytest.raises(asyncio.CancelledError):
        await task
    [row] = await actions(database)
    assert row.status == "requested"
    async with database.session() as db:
        await db.execute(
            update(EdrActionRecord).values(updated_at=utcnow() - timedelta(minutes=10))
        )
        await db.commit()
    connector.gate = None
    restarted = service(database, connector)
    async with restarted:
        [row] = await actions(database)
        assert row.status == "unknown"
        assert (await carry(restarted, "k-crash"))["status"] == "unknown"
    assert len(connector.calls) == 1


async def test_an_approval_decided_while_nothing_listened_runs_once_at_start(
    database: Database,
) -> None:
    connector = Scripted()
    policy = "actions:\n  isolate_host:\n    decision: require_approval\n"
    first = service(database, connector, policy=policy)
    async with first:
        await first.refresh()
        async with database.session() as db:
            endpoint_id = (await db.scalars(select(Endpoint.id))).one()
        asked = await first.request_action(
            action=EdrAction.ISOLATE, endpoint_id=endpoint_id, actor="rita", reason="beacon"
        )
    assert asked.action.status == "awaiting_approval"
    async with database.session() as db:
        await approvals.decide(
            db, approval_id=asked.action.id, actor="sam", verdict="approved", comment=None
        )
    assert connector.calls == []
    for _ in range(2):  # a start settles it; a later start finds nothing to do
        async with service(database, connector, policy=policy):
            pass
    [row] = await actions(database)
    assert (row.status, row.approved_by) == ("succeeded", "sam")
    assert len(connector.calls) == 1


async def test_the_merge_keeps_one_row_per_host(database: Database) -> None:
    one, two = Scripted("one"), Scripted("two")
    two.listed = [
        ConnectorEndpoint(
            connector="two", native_id="x-9", hostname="WS-1", ips=["10.0.0.9"], state="offline"
        )
    ]
    edr = service(database, one, two)
    await edr.refresh()
    async with database.session() as db:
        [row] = list(await db.scalars(select(Endpoint)))
    # the first configured connector keeps the host; the other's listing changes nothing
    assert (row.hostname, row.connector, row.native_id, row.state) == (
        "ws-1",
        "one",
        "n-1",
        "online",
    )
    assert (row.fqdn, row.ips, row.details) == ("ws-1.corp.example", ["10.0.0.1"], {"agent": "7.1"})
    one.listed = []
    await edr.refresh()
    async with database.session() as db:
        [row] = list(await db.scalars(select(Endpoint)))
    # "one" answered without it: "two" takes it over in the same refresh
    assert (row.connector, row.native_id, row.state) == ("two", "x-9", "offline")
    two.listed = []
    await edr.refresh()
    async with database.session() as db:
        [row] = list(await db.scalars(select(Endpoint)))
    assert (row.connector, row.source, row.state) == (None, "telemetry", "unknown")
    await edr.close()
