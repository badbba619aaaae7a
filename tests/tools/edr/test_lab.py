"""The lab connector: its state machine, audit trail, persistence and thread safety."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tools.edr.base import (
    ActionStatus,
    EdrAction,
    EdrEndpointUnknown,
    EdrUnavailable,
    EndpointState,
)
from tools.edr.lab import LabConnector


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2024, 6, 1, 9, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


@pytest.fixture
def lab() -> LabConnector:
    return LabConnector(clock=Clock())


async def test_enrol_and_inventory(lab: LabConnector) -> None:
    endpoint = lab.enrol("WS-0042.corp.example", ips=["10.20.0.42"], os="Windows 11")
    assert (endpoint.connector, endpoint.native_id, endpoint.hostname) == (
        "lab",
        "ws-0042",
        "ws-0042",
    )
    assert endpoint.fqdn == "ws-0042.corp.example"
    assert endpoint.state is EndpointState.ONLINE
    again = lab.enrol("ws-0042", ips=["10.20.0.42", "fe80::1"])
    assert again.ips == ["10.20.0.42", "fe80::1"]
    assert again.os == "Windows 11"
    [listed] = await lab.inventory()
    assert listed == again
    assert [e.event for e in lab.audit("ws-0042")] == ["enrol", "update"]
    lab.enrol("ws-0042")  # nothing new: no audit entry
    assert len(lab.audit()) == 2
    with pytest.raises(ValueError, match="empty"):
        lab.enrol("  ")


async def test_isolate_release_and_audit(lab: LabConnector) -> None:
    endpoint = lab.enrol("srv-db01", ips=["10.0.5.11"])
    receipt = await lab.act(EdrAction.ISOLATE, endpoint, comment="CASE-2024-00017 ransomware")
    assert receipt.status is ActionStatus.SUCCEEDED
    assert receipt.detail["changed"] is True
    assert receipt.native_action_id is not None
    assert lab.state_of("SRV-DB01") is EndpointState.ISOLATED
    assert (await lab.status(receipt)) == receipt
    released = await lab.act(EdrAction.UNISOLATE, endpoint, comment="cleaned")
    assert released.status is ActionStatus.SUCCEEDED
    assert lab.state_of("srv-db01") is EndpointState.ONLINE
    trail = lab.audit("srv-db01")
    assert [(e.event, e.from_state, e.to_state, e.comment) for e in trail[1:]] == [
        ("isolate", EndpointState.ONLINE, EndpointState.ISOLATED, "CASE-2024-00017 ransomware"),
        ("unisolate", EndpointState.ISOLATED, EndpointState.ONLINE, "cleaned"),
    ]
    assert trail[1].action_id == receipt.native_action_id
    assert trail[1].at < trail[2].at


async def test_goal_already_holding_is_a_recorded_no_op(lab: LabConnector) -> None:
    endpoint = lab.enrol("ws-7")
    release = await lab.act(EdrAction.UNISOLATE, endpoint, comment="not isolated")
    assert release.status is ActionStatus.SUCCEEDED
    assert release.detail["changed"] is False
    await lab.act(EdrAction.ISOLATE, endpoint, comment="first")
    again = await lab.act(EdrAction.ISOLATE, endpoint, comment="second")
    assert (again.status, again.detail["changed"]) == (ActionStatus.SUCCEEDED, False)
    assert lab.state_of("ws-7") is EndpointState.ISOLATED
    events = [(e.event, e.changed) for e in lab.audit("ws-7")[1:]]
    assert events == [("unisolate", False), ("isolate", True), ("isolate", False)]


async def test_scan_records_a_scan(lab: LabConnector) -> None:
    endpoint = lab.enrol("ws-8")
    receipt = await lab.act(EdrAction.SCAN, endpoint, comment="after phishing click")
    assert receipt.status is ActionStatus.SUCCEEDED
    assert receipt.detail["findings"] == []
    [scan] = lab.scans("ws-8")
    assert (scan.id, scan.comment, scan.status) == (
        receipt.native_action_id,
        "after phishing click",
        ActionStatus.SUCCEEDED,
    )
    assert lab.state_of("ws-8") is EndpointState.ONLINE


async def test_disconnected_endpoint_waits_for_connection(lab: LabConnector) -> None:
    endpoint = lab.enrol("laptop-3")
    lab.set_connected("laptop-3", False, comment="lid closed")
    assert lab.state_of("laptop-3") is EndpointState.OFFLINE
    receipt = await lab.act(EdrAction.ISOLATE, endpoint, comment="beaconing")
    assert receipt.status is ActionStatus.PENDING
    assert lab.state_of("laptop-3") is EndpointState.ISOLATING
    # The same action again answers the waiting one; a different one is refused.
    assert (await lab.act(EdrAction.ISOLATE, endpoint, comment="x")).native_action_id == (
        receipt.native_action_id
    )
    with pytest.raises(EdrUnavailable) as refused:
        await lab.act(EdrAction.SCAN, endpoint, comment="x")
    assert "waiting for laptop-3" in refused.value.reason
    lab.set_connected("laptop-3", True)
    assert (await lab.status(receipt)).status is ActionStatus.SUCCEEDED
    assert lab.state_of("laptop-3") is EndpointState.ISOLATED
    events = [(e.event, e.to_state) for e in lab.audit("laptop-3")]
    assert events[-3:] == [
        ("isolate", EndpointState.ISOLATING),
        ("connect", EndpointState.ISOLATING),
        ("isolate.completed", EndpointState.ISOLATED),
    ]


async def test_unknown_endpoint_and_action(lab: LabConnector) -> None:
    other = LabConnector(clock=Clock())
    endpoint = other.enrol("elsewhere")
    with pytest.raises(EdrEndpointUnknown):
        await lab.act(EdrAction.ISOLATE, endpoint, comment="x")
    with pytest.raises(EdrEndpointUnknown):
        lab.set_connected("elsewhere", False)
    receipt = await other.act(EdrAction.SCAN, endpoint, comment="x")
    with pytest.raises(EdrUnavailable, match="unavailable"):
        await lab.status(receipt)


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "lab.json"
    first = LabConnector(state_path=path)
    endpoint = first.enrol("ws-9", ips=["10.1.1.9"])
    receipt = await first.act(EdrAction.ISOLATE, endpoint, comment="contain")
    second = LabConnector(state_path=path)
    assert second.state_of("ws-9") is EndpointState.ISOLATED
    assert (await second.status(receipt)).status is ActionStatus.SUCCEEDED
    assert [e.event for e in second.audit()] == ["enrol", "isolate"]
    assert not path.with_name("lab.json.partial").exists()
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(EdrUnavailable):
        LabConnector(state_path=path)


async def test_concurrent_actions_from_threads_and_tasks(lab: LabConnector) -> None:
    endpoints = [lab.enrol(f"ws-{i}") for i in range(20)]

    def work(index: int) -> None:
        endpoint = endpoints[index]
        asyncio.run(lab.act(EdrAction.ISOLATE, endpoint, comment="thread"))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    await asyncio.gather(*(lab.act(EdrAction.ISOLATE, e, comment="task") for e in endpoints))
    for thread in threads:
        thread.join()
    assert all(e.state is EndpointState.ISOLATED for e in await lab.inventory())
    changes = [e for e in lab.audit() if e.event == "isolate" and e.changed]
    assert sorted(e.hostname for e in changes) == sorted(e.hostname for e in endpoints)
    assert len([e for e in lab.audit() if e.event == "isolate"]) == 40
