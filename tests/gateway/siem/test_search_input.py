"""A searcher's mistakes and hostile search input are 422 AURORA-4220 naming the field, never
503 AURORA-5032 (kept for a store that is truly unreachable) and never a 500."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
import pytest_asyncio

from core.logstore.query import MAX_DEPTH, MAX_TERMS
from core.security.permissions import Role
from tests.conftest import Gateway

# Every test here is a search refused or answered: one gateway serves them all.
pytestmark = pytest.mark.asyncio(loop_scope="module")


EVENT_ID = str(uuid.UUID(int=7))


def forged_cursor(millis: str, event_id: str = EVENT_ID) -> str:
    text = f"{millis}|{event_id}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


async def get(gateway: Gateway, path: str, headers: dict[str, str], **query: str) -> Any:
    response = await gateway.client.get(path, params=query, headers=headers)
    return response.status, await response.json()


async def refused(
    gateway: Gateway, headers: dict[str, str], field: str, path: str = "/api/v1/siem/logs", **q: str
) -> str:
    """The 422 a search answers, checked to name ``field``; its message."""
    status, body = await get(gateway, path, headers, **q)
    assert (status, body["error"]["code"]) == (422, "AURORA-4220"), body
    problems = body["error"]["detail"]
    assert [p["loc"] for p in problems] == [["query", field]], problems
    return str(problems[0]["msg"])


@pytest.fixture
def gateway(shared_gateway: Gateway) -> Gateway:
    return shared_gateway


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def analyst(shared_gateway: Gateway) -> dict[str, str]:
    return await shared_gateway.user(Role.ANALYST, "ana")


@pytest.mark.parametrize(
    ("q", "says"),
    [
        ("NOT " * 990 + "x", f"nested more than {MAX_DEPTH} levels"),
        ("(" * 990 + "x" + ")" * 990, f"nested more than {MAX_DEPTH} levels"),
        (" ".join(["a"] * (MAX_TERMS + 1)), f"more than {MAX_TERMS} terms"),
        ("event.code:(" + " OR ".join(["1"] * (MAX_TERMS + 1)) + ")", "terms"),
        ("timestamp:>garbage", "timestamp is an ISO 8601 date or time"),
        ("timestamp:garbage", "timestamp is an ISO 8601 date or time"),
        ("timestamp:[garbage TO *]", "timestamp is an ISO 8601 date or time"),
        ("timestamp:<0001-01-01", "outside 1900..2299"),
        ("timestamp:>=9999-12-31", "outside 1900..2299"),
        ("destination.port:" + "1" * 4000, "destination.port is a number"),
        ("destination.port:>-1", "destination.port is a number"),
        ("source.ip:10.0.0.0/99", "not a network"),
        ("a" * 4097, "at most 4096 characters"),
    ],
)
async def test_a_bad_query_is_422_naming_q(
    gateway: Gateway, analyst: dict[str, str], q: str, says: str
) -> None:
    assert says in await refused(gateway, analyst, "q", q=q)


@pytest.mark.parametrize("path", ["/api/v1/siem/logs", "/api/v1/siem/stats"])
@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"start": "0001-01-01T00:00:00Z"}, "start"),
        ({"start": "0001-01-01T00:00:00+14:00"}, "start"),
        ({"end": "9999-12-31T23:59:59-14:00"}, "end"),
        ({"end": "2300-01-01T00:00:00Z"}, "end"),
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "end"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "end"),
        ({"start": "2026-01-01T00:00:00"}, "start"),  # no zone
        ({"start": "1" * 4300}, "start"),
    ],
)
async def test_a_bad_window_is_422_naming_the_bound(
    gateway: Gateway, analyst: dict[str, str], path: str, query: dict[str, str], field: str
) -> None:
    await refused(gateway, analyst, field, path, **query)


@pytest.mark.parametrize("digits", [4300, 5000])
async def test_a_huge_integer_is_422(
    gateway: Gateway, analyst: dict[str, str], digits: int
) -> None:
    await refused(gateway, analyst, "limit", limit="1" * digits)


@pytest.mark.parametrize(
    "cursor",
    [
        forged_cursor("9" * 30),  # past any datetime
        forged_cursor("-" + "9" * 30),
        forged_cursor("99999999999999"),  # year 5138
        forged_cursor("-62135596800000"),  # year 1
        forged_cursor("1700000000000", "not-a-uuid"),
        forged_cursor("x"),
        "%%%not base64%%%",
        base64.urlsafe_b64encode(b"\xff\xfe|x").decode(),
    ],
    ids=["huge", "huge-negative", "year-5138", "year-1", "bad-id", "bad-time", "not-b64", "bytes"],
)
async def test_a_forged_cursor_is_422(
    gateway: Gateway, analyst: dict[str, str], cursor: str
) -> None:
    assert "not a cursor this API gave" in await refused(gateway, analyst, "cursor", cursor=cursor)


async def test_good_searches_still_answer(gateway: Gateway, analyst: dict[str, str]) -> None:
    for query in (
        {"q": "NOT " * MAX_DEPTH + "x"},
        {"q": "(" * (MAX_DEPTH - 1) + "x" + ")" * (MAX_DEPTH - 1)},
        {"q": "timestamp:>=2026-01-01 AND timestamp:[2026-01-01T00\\:00Z TO *]"},
        {"q": "timestamp:*", "start": "1900-01-01T00:00:00Z", "end": "2299-12-31T00:00:00Z"},
        {"cursor": forged_cursor("1700000000000")},  # well-formed: just nothing there
    ):
        status, body = await get(gateway, "/api/v1/siem/logs", analyst, **query)
        assert (status, body["items"]) == (200, []), (query, body)
