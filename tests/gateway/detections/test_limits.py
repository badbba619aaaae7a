"""Detections under hostile input, through the gateway: Sigma bodies past a limit are AURORA-4222
naming it and store nothing; logins and conversions never wait on the loop's shared executor;
versioned edits that lose a race are AURORA-4090, never a 500; timestamps outside what the
stores hold are AURORA-4220."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from aiohttp import ClientResponse

from core.errors import Conflict
from core.security.permissions import Role
from gateway.detections import rules
from gateway.detections.models import DetectionRule
from gateway.detections.runs import DetectionScheduler
from gateway.detections.schemas import RuleUpdate
from gateway.keys import DATABASE, LOGSTORE, SIGMA
from gateway.siem import service as hunts
from gateway.siem.models import Hunt
from gateway.siem.schemas import HuntUpdate
from tests.conftest import PASSWORD, Gateway
from tests.waiting import eventually
from tools.sigma.convert import MAX_DOCUMENTS

RULES = "/api/v1/detections/rules"
HUNTS = "/api/v1/siem/hunts"


def sigma(condition: str = "selection", image: str = "\\cmd.exe") -> str:
    return f"""
title: Process {image}
logsource:
  product: windows
  category: process_creation
detection:
  selection:
    Image|endswith: '{image}'
  condition: {condition}
level: medium
"""


async def body(response: ClientResponse, status: int) -> Any:
    answer = await response.json()
    assert response.status == status, answer
    return answer


def error(answer: dict[str, Any], code: str) -> dict[str, Any]:
    assert answer["error"]["code"] == code, answer
    detail: dict[str, Any] = answer["error"]["detail"]
    return detail


async def stored_rules(gateway: Gateway, headers: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (
        await body(await gateway.client.get(RULES, headers=headers), 200)
    )["items"]
    return items


async def stored_hunts(gateway: Gateway, headers: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = (
        await body(await gateway.client.get(HUNTS, headers=headers), 200)
    )["items"]
    return items


@pytest.fixture
async def hunter(gateway: Gateway) -> dict[str, str]:
    return await gateway.user(Role.HUNTER, "hana")


# -- Sigma bodies past a limit ----------------------------------------------------------------


async def test_a_body_past_the_document_cap_is_refused_and_stores_nothing(
    gateway: Gateway, hunter: dict[str, str]
) -> None:
    documents = "---\n".join(sigma(image=f"\\tool{n}.exe") for n in range(MAX_DOCUMENTS + 1))
    answer = await body(
        await gateway.client.post(RULES, headers=hunter, json={"sigma": documents}), 422
    )
    detail = error(answer, "AURORA-4222")
    assert detail["max_documents"] == MAX_DOCUMENTS
    assert f"at most {MAX_DOCUMENTS} YAML documents" in detail["errors"][0]["message"]
    assert await stored_rules(gateway, hunter) == []


async def test_yaml_aliases_are_refused_and_store_nothing(
    gateway: Gateway, hunter: dict[str, str]
) -> None:
    laughs = "a: &a ['lol','lol','lol','lol','lol','lol','lol','lol','lol']\n" + "".join(
        f"{chr(98 + n)}: &{chr(98 + n)} [{','.join([f'*{chr(97 + n)}'] * 9)}]\n" for n in range(8)
    )
    answer = await body(
        await gateway.client.post(RULES, headers=hunter, json={"sigma": laughs + sigma()}), 422
    )
    detail = error(answer, "AURORA-4222")
    assert detail["errors"][0]["message"] == "YAML aliases are not allowed in a Sigma rule"
    assert await stored_rules(gateway, hunter) == []


async def test_a_condition_of_200_nots_is_422_everywhere_sigma_is_taken(
    gateway: Gateway, hunter: dict[str, str]
) -> None:
    nots = sigma("not " * 200 + "selection")
    answer = await body(await gateway.client.post(RULES, headers=hunter, json={"sigma": nots}), 422)
    assert error(answer, "AURORA-4222")["max_condition_depth"] == 32
    assert await stored_rules(gateway, hunter) == []
    # an update: refused, the rule as it was
    rule = await body(
        await gateway.client.post(RULES, headers=hunter, json={"sigma": sigma()}), 201
    )
    answer = await body(
        await gateway.client.patch(f"{RULES}/{rule['id']}", headers=hunter, json={"sigma": nots}),
        422,
    )
    error(answer, "AURORA-4222")
    (kept,) = await stored_rules(gateway, hunter)
    assert (kept["sigma"], kept["condition"], kept["version"]) == (
        rule["sigma"],
        rule["condition"],
        1,
    )
    # a Sigma hunt, created or updated
    answer = await body(
        await gateway.client.post(
            HUNTS, headers=hunter, json={"name": "nots", "kind": "sigma", "query": nots}
        ),
        422,
    )
    error(answer, "AURORA-4222")
    assert await stored_hunts(gateway, hunter) == []
    hunt = await body(
        await gateway.client.post(
            HUNTS, headers=hunter, json={"name": "cmd", "kind": "sigma", "query": sigma()}
        ),
        201,
    )
    answer = await body(
        await gateway.client.patch(f"{HUNTS}/{hunt['id']}", headers=hunter, json={"query": nots}),
        422,
    )
    error(answer, "AURORA-4222")
    (kept,) = await stored_hunts(gateway, hunter)
    assert (kept["query"], kept["version"]) == (hunt["query"], 1)


# -- executors --------------------------------------------------------------------------------


async def test_logins_and_conversions_never_wait_on_the_loops_shared_executor(
    gateway: Gateway, hunter: dict[str, str]
) -> None:
    """The loop's default executor is what ``asyncio.to_thread`` shares: held here by a task
    that never ends until released, a login (argon2) and a rule's conversion still finish."""
    loop = asyncio.get_running_loop()
    release = threading.Event()
    shared = ThreadPoolExecutor(1)
    loop.set_default_executor(shared)
    held = loop.run_in_executor(None, release.wait)
    try:
        async with asyncio.timeout(60):  # a bound on a hang, not a measure
            login = await gateway.client.post(
                "/api/v1/auth/token", json={"username": "hana", "password": PASSWORD}
            )
            created = await gateway.client.post(RULES, headers=hunter, json={"sigma": sigma()})
        await body(login, 200)
        await body(created, 201)
        assert not held.done()
    finally:
        release.set()
        await held
        shared.shutdown()


# -- versioned edits --------------------------------------------------------------------------


async def test_concurrent_patches_of_a_rule_are_one_200_and_409s(
    gateway: Gateway, hunter: dict[str, str]
) -> None:
    rule = await body(
        await gateway.client.post(RULES, headers=hunter, json={"sigma": sigma()}), 201
    )
    url = f"{RULES}/{rule['id']}"
    responses = await asyncio.gather(
        *(
            gateway.client.patch(
                url, headers=hunter, json={"sigma": sigma(image=f"\\v{n}.exe"), "version": 1}
            )
            for n in range(3)
        )
    )
    answers = [(r.status, await r.json()) for r in responses]
    assert sorted(status for status, _ in answers) == [200, 409, 409], answers
    (winner,) = [answer for status, answer in answers if status == 200]
    for status, answer in answers:
        if status == 409:
            error(answer, "AURORA-4090")
    (kept,) = await stored_rules(gateway, hunter)
    assert (kept["version"], kept["sigma"]) == (2, winner["sigma"])


async def test_a_rule_changed_after_it_was_read_is_a_conflict(
    gateway: Gateway, hunter: dict[str, str]
) -> None:
    """Two sessions: one reads the rule, another writer changes it, then the first writes."""
    rule = await body(
        await gateway.client.post(RULES, headers=hunter, json={"sigma": sigma()}), 201
    )
    async with gateway.app[DATABASE].session() as db:
        read = await db.get(DetectionRule, rule["id"])  # held: the session keeps it while held
        assert read is not None
        assert read.version == 1
        await body(
            await gateway.client.patch(
                f"{RULES}/{rule['id']}", headers=hunter, json={"interval_seconds": 900}
            ),
            200,
        )
        with pytest.raises(Conflict) as caught:
            await rules.update_rule(
                db=db,
                converter=gateway.app[SIGMA],
                rule_id=rule["id"],
                body=RuleUpdate(interval_seconds=120),
            )
    assert caught.value.code == "AURORA-4090"
    assert caught.value.detail == {"rule_id": rule["id"], "reason": "changed concurrently"}
    (kept,) = await stored_rules(gateway, hunter)
    assert (kept["interval_seconds"], kept["version"]) == (900, 2)


async def test_a_hunt_changed_after_it_was_read_is_a_conflict(
    gateway: Gateway, hunter: dict[str, str]
) -> None:
    hunt = await body(
        await gateway.client.post(HUNTS, headers=hunter, json={"name": "a", "query": "cmd.exe"}),
        201,
    )
    async with gateway.app[DATABASE].session() as db:
        read = await db.get(Hunt, hunt["id"])  # held: the session's map keeps it while held
        assert read is not None
        await body(
            await gateway.client.patch(
                f"{HUNTS}/{hunt['id']}", headers=hunter, json={"name": "theirs"}
            ),
            200,
        )
        with pytest.raises(Conflict) as caught:
            await hunts.update_hunt(
                db=db,
                converter=gateway.app[SIGMA],
                hunt_id=hunt["id"],
                body=HuntUpdate(name="ours"),
            )
    assert caught.value.code == "AURORA-4090"
    (kept,) = await stored_hunts(gateway, hunter)
    assert (kept["name"], kept["version"]) == ("theirs", 2)


async def test_scheduling_a_rule_is_no_edit(gateway: Gateway, hunter: dict[str, str]) -> None:
    """The scheduler's bookkeeping leaves the version: an analyst holding version 1 can
    still edit the rule after it ran."""
    rule = await body(
        await gateway.client.post(RULES, headers=hunter, json={"sigma": sigma(), "enabled": True}),
        201,
    )
    scheduler = DetectionScheduler(
        database=gateway.app[DATABASE], store=gateway.app[LOGSTORE], dedup_window=lambda: 600
    )
    assert await scheduler.run_due() == 1
    (ran,) = await stored_rules(gateway, hunter)
    assert ran["last_run_at"] is not None
    assert ran["version"] == 1
    edited = await gateway.client.patch(
        f"{RULES}/{rule['id']}", headers=hunter, json={"enabled": False, "version": 1}
    )
    assert (await body(edited, 200))["version"] == 2


class CountedScheduler(DetectionScheduler):
    """The scheduler, counting its steps."""

    steps = 0

    async def run_due(self) -> int:
        self.steps += 1
        return await super().run_due()


async def test_the_scheduler_runs_while_entered_and_stops_on_exit(gateway: Gateway) -> None:
    scheduler = CountedScheduler(
        database=gateway.app[DATABASE],
        store=gateway.app[LOGSTORE],
        dedup_window=lambda: 600,
        tick_seconds=3600,
    )
    assert not scheduler.running
    async with scheduler as entered:
        assert entered is scheduler
        assert scheduler.running
        await eventually(lambda: scheduler.steps == 1)  # at once, not after a tick
        scheduler.wake()
        await eventually(lambda: scheduler.steps == 2)
    assert not scheduler.running


# -- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "end"),
    [
        ("0001-01-01T00:00:00+14:00", "2026-01-01T00:00:00Z"),
        ("2299-06-01T00:00:00Z", "2300-01-01T00:00:00Z"),
        ("1899-12-01T00:00:00Z", "1900-01-01T00:00:00Z"),
    ],
    ids=["year-1-east-of-utc", "past-2299", "before-1900"],
)
async def test_a_run_window_outside_the_stores_range_is_422_and_runs_nothing(
    gateway: Gateway, hunter: dict[str, str], start: str, end: str
) -> None:
    rule = await body(
        await gateway.client.post(RULES, headers=hunter, json={"sigma": sigma()}), 201
    )
    answer = await body(
        await gateway.client.post(
            f"{RULES}/{rule['id']}/run", headers=hunter, json={"start": start, "end": end}
        ),
        422,
    )
    assert "date out of range" in error(answer, "AURORA-4220")[0]["msg"]
    runs = await body(await gateway.client.get(f"{RULES}/{rule['id']}/runs", headers=hunter), 200)
    assert runs["total"] == 0


async def test_a_suppression_until_beyond_2299_is_422_and_stores_nothing(
    gateway: Gateway, hunter: dict[str, str]
) -> None:
    rule = await body(
        await gateway.client.post(RULES, headers=hunter, json={"sigma": sigma()}), 201
    )
    url = f"{RULES}/{rule['id']}/suppressions"
    answer = await body(
        await gateway.client.post(
            url,
            headers=hunter,
            json={"match": {"host.name": "ws-1"}, "reason": "lab", "until": "9999-12-31T23:59:59Z"},
        ),
        422,
    )
    assert error(answer, "AURORA-4220")[0]["loc"] == ["body", "until"]
    assert (await body(await gateway.client.get(url, headers=hunter), 200))["total"] == 0


async def test_hunt_windows_stay_within_the_stores_range(
    gateway: Gateway, hunter: dict[str, str]
) -> None:
    hunt = await body(
        await gateway.client.post(HUNTS, headers=hunter, json={"name": "a", "query": "cmd.exe"}),
        201,
    )
    url = f"{HUNTS}/{hunt['id']}/run"
    answer = await body(
        await gateway.client.post(url, headers=hunter, json={"start": "0001-01-01T00:00:00Z"}),
        422,
    )
    error(answer, "AURORA-4220")
    (listed,) = await stored_hunts(gateway, hunter)
    assert listed["last_run"] is None
    # an early end with the hunt's lookback: the window starts where the store does
    ran = await body(
        await gateway.client.post(url, headers=hunter, json={"end": "1900-01-01T00:30:00Z"}), 200
    )
    assert (ran["status"], ran["matches"]) == ("succeeded", 0)
    assert ran["window_start"].startswith("1900-01-01T00:00:00")


@pytest.mark.parametrize("offset", ["2147483648", "1" + "0" * 24, "1" * 4300])
async def test_a_listing_offset_past_an_integer_column_is_422(
    gateway: Gateway, hunter: dict[str, str], offset: str
) -> None:
    rule = await body(
        await gateway.client.post(RULES, headers=hunter, json={"sigma": sigma()}), 201
    )
    for url in (
        RULES,
        HUNTS,
        f"{RULES}/{rule['id']}/runs",
        f"{RULES}/{rule['id']}/suppressions",
        f"{RULES}/{rule['id']}/feedback",
    ):
        response = await gateway.client.get(url, headers=hunter, params={"offset": offset})
        detail = error(await body(response, 422), "AURORA-4220")
        assert detail[0]["loc"] == ["query", "offset"], url
