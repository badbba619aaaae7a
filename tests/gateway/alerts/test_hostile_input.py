"""Hostile alert input is 422 AURORA-4220 and writes nothing; a stored row the response cannot
carry never takes the listing down; nothing is committed that cannot be answered."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import pytest_asyncio
from pydantic import ValidationError
from sqlalchemy import func, select

from core.db.base import utcnow
from core.errors import Conflict
from core.security.permissions import Role
from core.validation import MAX_JSON_DEPTH, json_depth
from gateway.alerts import service
from gateway.alerts.models import Alert
from gateway.alerts.schemas import RAW_MAX_BYTES, AlertCreate, AlertRead, AlertUpdate
from gateway.keys import BUS, DATABASE
from tests.conftest import Gateway

# Refusals, and writes each test compares with the counts it found: one gateway serves them all
# but the one that stores a row past the limits.
pytestmark = pytest.mark.asyncio(loop_scope="module")

ALERT = {"title": "Beacon", "source": "zeek", "severity": "high", "raw": {"uid": "C1"}}


def nested(depth: int) -> dict[str, Any]:
    """An object ``depth`` levels deep."""
    value: dict[str, Any] = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def analyst(shared_gateway: Gateway) -> dict[str, str]:
    return await shared_gateway.user(Role.ANALYST, "ana")


async def count(gateway: Gateway) -> int:
    async with gateway.app[DATABASE].session() as db:
        return int((await db.execute(select(func.count()).select_from(Alert))).scalar_one())


async def send(
    gateway: Gateway, method: str, path: str, headers: dict[str, str], body: Any = None, **q: str
) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"headers": headers, "params": q}
    if isinstance(body, str):
        kwargs["data"] = body
        kwargs["headers"] = {**headers, "Content-Type": "application/json"}
    elif body is not None:
        kwargs["json"] = body
    response = await gateway.client.request(method, path, **kwargs)
    return response.status, await response.json()


def assert_422(status: int, reply: Any, loc: list[Any]) -> None:
    assert (status, reply["error"]["code"]) == (422, "AURORA-4220"), reply
    assert loc in [d["loc"] for d in reply["error"]["detail"]], reply


async def store_poisoned(gateway: Gateway, raw: dict[str, Any]) -> str:
    """An alert row as an older release could leave it: ``raw`` past today's limits."""
    now = utcnow()
    async with gateway.app[DATABASE].session() as db:
        db.add(
            Alert(
                id="ALRT-2000-00001",
                title="old row",
                severity="low",
                status="new",
                source="legacy",
                tags=[],
                entities=[],
                raw=raw,
                fingerprint="f" * 64,
                first_seen=now,
                last_seen=now,
                created_by="ana",
            )
        )
        await db.commit()
    return "ALRT-2000-00001"


async def test_raw_nested_256_deep_is_422_and_writes_nothing(
    shared_gateway: Gateway, analyst: dict[str, str]
) -> None:
    before = await count(shared_gateway)
    status, reply = await send(
        shared_gateway, "POST", "/api/v1/alerts", analyst, {**ALERT, "raw": nested(256)}
    )
    assert_422(status, reply, ["body"])
    assert await count(shared_gateway) == before
    status, page = await send(shared_gateway, "GET", "/api/v1/alerts", analyst)
    assert (status, page["total"]) == (200, before)


async def test_100k_deep_json_is_422_and_writes_nothing(
    shared_gateway: Gateway, analyst: dict[str, str]
) -> None:
    before = await count(shared_gateway)
    body = '{"title": "x", "source": "y", "raw": ' + "[" * 100_000 + "]" * 100_000 + "}"
    status, reply = await send(shared_gateway, "POST", "/api/v1/alerts", analyst, body)
    assert_422(status, reply, ["body"])
    assert await count(shared_gateway) == before


async def test_raw_is_bounded_in_size_and_depth(
    shared_gateway: Gateway, analyst: dict[str, str]
) -> None:
    before = await count(shared_gateway)
    big = {"blob": "x" * RAW_MAX_BYTES}
    status, reply = await send(
        shared_gateway, "POST", "/api/v1/alerts", analyst, {**ALERT, "raw": big}
    )
    assert_422(status, reply, ["body", "raw"])
    assert await count(shared_gateway) == before
    # in-process callers (the detection scheduler) build the schema without the body's limit
    with pytest.raises(ValidationError) as refused:
        AlertCreate(title="t", source="s", raw=nested(MAX_JSON_DEPTH + 1))
    assert [e["loc"] for e in refused.value.errors()] == [("raw",)]
    assert AlertCreate(title="t", source="s", raw=nested(MAX_JSON_DEPTH)).raw is not None


@pytest.mark.parametrize(
    "observed_at", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2026-01-01T00:00"]
)
async def test_an_observed_time_outside_the_accepted_years_is_422(
    shared_gateway: Gateway, analyst: dict[str, str], observed_at: str
) -> None:
    before = await count(shared_gateway)
    body = {**ALERT, "observed_at": observed_at}
    status, reply = await send(shared_gateway, "POST", "/api/v1/alerts", analyst, body)
    assert_422(status, reply, ["body", "observed_at"])
    assert await count(shared_gateway) == before


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"offset": "1" * 25}, "offset"),
        ({"offset": "1" * 4300}, "offset"),
        ({"offset": "1" * 5000}, "offset"),
        ({"limit": "1" * 4300}, "limit"),
        ({"since": "0001-01-01T00:00:00+14:00"}, "since"),
        ({"until": "9999-12-31T23:59:59-14:00"}, "until"),
    ],
)
async def test_hostile_list_queries_are_422(
    shared_gateway: Gateway, analyst: dict[str, str], query: dict[str, str], field: str
) -> None:
    status, reply = await send(shared_gateway, "GET", "/api/v1/alerts", analyst, **query)
    assert_422(status, reply, ["query", field])


async def test_huge_integers_in_an_update_are_422_and_change_nothing(
    shared_gateway: Gateway, analyst: dict[str, str]
) -> None:
    own = {**ALERT, "title": "Beacon, a huge version"}  # a title of its own: no duplicate
    _, alert = await send(shared_gateway, "POST", "/api/v1/alerts", analyst, own)
    url = f"/api/v1/alerts/{alert['id']}"
    for version in ("1" + "0" * 24, "1" * 4300, "1" * 5000):
        body = '{"severity": "low", "version": ' + version + "}"
        status, reply = await send(shared_gateway, "PATCH", url, analyst, body)
        assert (status, reply["error"]["code"]) == (422, "AURORA-4220"), version[:30]
    _, now = await send(shared_gateway, "GET", url, analyst)
    assert (now["severity"], now["version"]) == ("high", 1)


@pytest.mark.asyncio(loop_scope="function")  # a gateway of its own
async def test_a_stored_row_past_the_limits_is_shown_with_a_marker(
    gateway: Gateway, caplog: pytest.LogCaptureFixture
) -> None:
    analyst = await gateway.user(Role.ANALYST, "ana")
    alert_id = await store_poisoned(gateway, nested(256))
    await send(gateway, "POST", "/api/v1/alerts", analyst, ALERT)
    marker = {"_omitted": f"nested more than {MAX_JSON_DEPTH} levels deep; not shown"}
    with caplog.at_level(logging.WARNING, logger="aurora.alerts"):
        status, page = await send(gateway, "GET", "/api/v1/alerts", analyst)
    assert (status, page["total"]) == (200, 2)
    shown = {item["id"]: item["raw"] for item in page["items"]}
    assert shown[alert_id] == marker
    assert any(alert_id in record.getMessage() for record in caplog.records)
    status, one = await send(gateway, "GET", f"/api/v1/alerts/{alert_id}", analyst)
    assert (status, one["raw"]) == (200, marker)
    # it can still be worked on (and closed), and its stored raw is left as it was
    status, changed = await send(
        gateway, "PATCH", f"/api/v1/alerts/{alert_id}", analyst, {"status": "false_positive"}
    )
    assert (status, changed["status"], changed["raw"]) == (200, "false_positive", marker)
    async with gateway.app[DATABASE].session() as db:
        stored = await db.get(Alert, alert_id)
        assert stored is not None
        assert json_depth(stored.raw) == 256


async def test_nothing_is_committed_or_announced_when_the_answer_cannot_be_built(
    shared_gateway: Gateway, analyst: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    before = await count(shared_gateway)
    _, cases_before = await send(shared_gateway, "GET", "/api/v1/cases", analyst)
    own = {**ALERT, "title": "Beacon, unanswerable"}
    _, alert = await send(shared_gateway, "POST", "/api/v1/alerts", analyst, own)

    def broken(cls: type[AlertRead], *args: Any, **kwargs: Any) -> AlertRead:
        raise RuntimeError("the read model cannot be built")

    monkeypatch.setattr(AlertRead, "model_validate", classmethod(broken))
    with shared_gateway.app[BUS].subscribe("alerts.*", "cases.*") as events:
        status, reply = await send(
            shared_gateway, "POST", "/api/v1/alerts", analyst, {**ALERT, "title": "another"}
        )
        assert (status, reply["error"]["code"]) == (500, "AURORA-5000")
        url = f"/api/v1/alerts/{alert['id']}"
        status, reply = await send(shared_gateway, "PATCH", url, analyst, {"severity": "low"})
        assert (status, reply["error"]["code"]) == (500, "AURORA-5000")
        status, reply = await send(shared_gateway, "POST", f"{url}/promote", analyst, {})
        assert (status, reply["error"]["code"]) == (500, "AURORA-5000")
        assert events.drain() == []
    monkeypatch.undo()
    assert await count(shared_gateway) == before + 1
    status, now = await send(shared_gateway, "GET", f"/api/v1/alerts/{alert['id']}", analyst)
    assert (status, now["severity"], now["version"], now["case_id"]) == (200, "high", 1, None)
    status, cases = await send(shared_gateway, "GET", "/api/v1/cases", analyst)
    assert (status, cases["total"]) == (200, cases_before["total"])


async def test_a_concurrent_edit_found_at_flush_is_409(
    shared_gateway: Gateway, analyst: dict[str, str]
) -> None:
    own = {**ALERT, "title": "Beacon, raced"}
    _, alert = await send(shared_gateway, "POST", "/api/v1/alerts", analyst, own)
    database = shared_gateway.app[DATABASE]
    async with database.session() as first, database.session() as second:
        # both read version 1 (held: a session keeps only the rows its caller holds)
        held = [await service.get_alert(db=db, alert_id=alert["id"]) for db in (first, second)]
        assert [row.version for row in held] == [1, 1]
        await service.update_alert(
            db=first, actor="ana", alert_id=alert["id"], body=AlertUpdate(severity="low")
        )
        with pytest.raises(Conflict) as conflict:
            await service.update_alert(
                db=second, actor="bob", alert_id=alert["id"], body=AlertUpdate(severity="critical")
            )
    assert conflict.value.code == "AURORA-4090"
    assert conflict.value.detail == {"alert_id": alert["id"], "reason": "changed concurrently"}
    _, now = await send(shared_gateway, "GET", f"/api/v1/alerts/{alert['id']}", analyst)
    assert (now["severity"], now["version"]) == ("low", 2)
