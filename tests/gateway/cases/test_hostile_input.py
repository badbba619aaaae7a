"""Hostile case input is 422 AURORA-4220 and writes nothing (no row, no timeline entry); nothing
is committed or announced that cannot be answered."""

from __future__ import annotations

from typing import Any

import pytest
import pytest_asyncio
from pydantic import BaseModel
from sqlalchemy import func, select

from core.db.base import Base
from core.security.permissions import Role
from gateway.cases.models import Case, CaseComment, CaseEvent, CaseObservable, CaseTask
from gateway.cases.schemas import CaseRead, CommentRead, ObservableRead, TaskRead
from gateway.keys import BUS, DATABASE
from tests.conftest import Gateway

# Refusals, and writes each test compares with the counts it found: one gateway serves them all.
pytestmark = pytest.mark.asyncio(loop_scope="module")

API = "/api/v1/cases"
CASE = {"title": "Beacon from WS-17", "severity": "high"}
HUGE = ["1" + "0" * 24, "2147483648", "1" * 4300, "1" * 5000]
"""Integers a column cannot hold: 25 digits, one past PostgreSQL's integer, and the sizes
Python refuses to convert from text (4,300 digits) or orjson to read as a double."""
BAD_TIMES = ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "2300-01-01T00:00:00Z"]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def analyst(shared_gateway: Gateway) -> dict[str, str]:
    return await shared_gateway.user(Role.ANALYST, "ana")


async def count(gateway: Gateway, table: type[Base]) -> int:
    async with gateway.app[DATABASE].session() as db:
        return int((await db.execute(select(func.count()).select_from(table))).scalar_one())


async def counts(gateway: Gateway) -> dict[str, int]:
    tables: list[type[Base]] = [Case, CaseEvent, CaseComment, CaseTask, CaseObservable]
    return {table.__tablename__: await count(gateway, table) for table in tables}


async def call(
    gateway: Gateway, method: str, path: str, headers: dict[str, str], body: Any = None, **q: str
) -> tuple[int, Any]:
    kwargs: dict[str, Any] = {"headers": headers, "params": q}
    if isinstance(body, str):  # raw JSON text, for what a JSON encoder would never write
        kwargs["data"] = body
        kwargs["headers"] = {**headers, "Content-Type": "application/json"}
    elif body is not None:
        kwargs["json"] = body
    response = await gateway.client.request(method, path, **kwargs)
    return response.status, (None if response.status == 204 else await response.json())


def assert_422(status: int, reply: Any, loc: list[Any]) -> None:
    assert (status, reply["error"]["code"]) == (422, "AURORA-4220"), reply
    assert loc in [d["loc"] for d in reply["error"]["detail"]], reply


async def new_case(gateway: Gateway, headers: dict[str, str]) -> dict[str, Any]:
    status, body = await call(gateway, "POST", API, headers, CASE)
    assert status == 201, body
    return dict(body)


async def test_deep_json_is_422_and_writes_nothing(
    shared_gateway: Gateway, analyst: dict[str, str]
) -> None:
    before = await counts(shared_gateway)
    for depth in (256, 100_000):
        body = '{"title": "x", "tags": ' + "[" * depth + "]" * depth + "}"
        status, reply = await call(shared_gateway, "POST", API, analyst, body)
        assert_422(status, reply, ["body"])
    assert await counts(shared_gateway) == before


@pytest.mark.parametrize("due_date", BAD_TIMES)
async def test_a_due_date_outside_the_accepted_years_is_422(
    shared_gateway: Gateway, analyst: dict[str, str], due_date: str
) -> None:
    case = await new_case(shared_gateway, analyst)
    url = f"{API}/{case['id']}/tasks"
    before = await counts(shared_gateway)
    status, reply = await call(
        shared_gateway, "POST", url, analyst, {"title": "t", "due_date": due_date}
    )
    assert_422(status, reply, ["body", "due_date"])
    _, task = await call(shared_gateway, "POST", url, analyst, {"title": "t"})
    after_create = await counts(shared_gateway)
    status, reply = await call(
        shared_gateway, "PATCH", f"{url}/{task['id']}", analyst, {"due_date": due_date}
    )
    assert_422(status, reply, ["body", "due_date"])
    assert await counts(shared_gateway) == after_create
    assert after_create[CaseTask.__tablename__] == before[CaseTask.__tablename__] + 1


async def test_huge_integers_in_bodies_are_422_and_change_nothing(
    shared_gateway: Gateway, analyst: dict[str, str]
) -> None:
    case = await new_case(shared_gateway, analyst)
    _, task = await call(
        shared_gateway, "POST", f"{API}/{case['id']}/tasks", analyst, {"title": "t"}
    )
    before = await counts(shared_gateway)
    for number in HUGE:
        for url in (f"{API}/{case['id']}", f"{API}/{case['id']}/tasks/{task['id']}"):
            body = '{"title": "changed", "version": ' + number + "}"
            status, reply = await call(shared_gateway, "PATCH", url, analyst, body)
            assert (status, reply["error"]["code"]) == (422, "AURORA-4220"), (url, number[:30])
    assert await counts(shared_gateway) == before
    _, now = await call(shared_gateway, "GET", f"{API}/{case['id']}", analyst)
    assert (now["title"], now["version"]) == (CASE["title"], 1)


@pytest.mark.parametrize("number", HUGE)
async def test_huge_integers_in_queries_are_422(
    shared_gateway: Gateway, analyst: dict[str, str], number: str
) -> None:
    case = await new_case(shared_gateway, analyst)
    for path in ("", f"/{case['id']}/observables", f"/{case['id']}/comments"):
        status, reply = await call(shared_gateway, "GET", API + path, analyst, offset=number)
        assert_422(status, reply, ["query", "offset"])
    status, reply = await call(
        shared_gateway, "GET", f"{API}/{case['id']}/tasks", analyst, limit=number
    )
    assert_422(status, reply, ["query", "limit"])


@pytest.mark.parametrize(
    ("model", "method", "path", "body"),
    [
        (CaseRead, "POST", "", CASE),
        (CaseRead, "PATCH", "/{case}", {"title": "renamed"}),
        (CaseRead, "DELETE", "/{case}", None),
        (CommentRead, "POST", "/{case}/comments", {"body": "hello"}),
        (TaskRead, "POST", "/{case}/tasks", {"title": "collect"}),
        (TaskRead, "PATCH", "/{case}/tasks/{task}", {"title": "renamed"}),
        (ObservableRead, "POST", "/{case}/observables", {"type": "ip", "value": "45.33.32.156"}),
    ],
)
async def test_nothing_is_committed_or_announced_when_the_answer_cannot_be_built(
    shared_gateway: Gateway,
    analyst: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    model: type[BaseModel],
    method: str,
    path: str,
    body: Any,
) -> None:
    case = await new_case(shared_gateway, analyst)
    _, task = await call(
        shared_gateway, "POST", f"{API}/{case['id']}/tasks", analyst, {"title": "t"}
    )
    before = await counts(shared_gateway)

    def broken(cls: type[BaseModel], *args: Any, **kwargs: Any) -> BaseModel:
        raise RuntimeError("the read model cannot be built")

    monkeypatch.setattr(model, "model_validate", classmethod(broken))
    url = API + path.format(case=case["id"], task=task["id"])
    with shared_gateway.app[BUS].subscribe("cases.*") as events:
        status, reply = await call(shared_gateway, method, url, analyst, body)
        assert (status, reply["error"]["code"]) == (500, "AURORA-5000")
        assert events.drain() == []
    monkeypatch.undo()
    assert await counts(shared_gateway) == before
    _, now = await call(shared_gateway, "GET", f"{API}/{case['id']}", analyst)
    assert (now["title"], now["version"], now["deleted_at"]) == (CASE["title"], 1, None)
    _, tasks = await call(shared_gateway, "GET", f"{API}/{case['id']}/tasks", analyst)
    assert [(t["title"], t["version"]) for t in tasks["items"]] == [("t", 1)]
