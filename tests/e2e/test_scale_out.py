"""Three gateway processes on one PostgreSQL, and one of them killed with SIGKILL while
investigations run and streams are open: every investigation ends, none is run by two replicas
at once, and the streams on the survivors keep going, fed by every replica (core.bridge).

No specialist runs here: every agent URL leads to a socket that accepts connections and never
answers, so each investigation waits out its agent calls (seconds) and ends without findings:
long enough to be running when a replica is killed, which is what the queue's takeover needs.
Each gateway keeps its own embedded log store (one chDB path per process): this test touches
no log route.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from websockets.asyncio.client import ClientConnection, connect

from agents.catalog import SPECIALISTS
from core.db import create_database
from core.settings import Settings
from gateway.investigations.models import Investigation
from tests.conftest import postgres_admin_url
from tests.e2e.aurora import Platform, aurora_env, http, login, run
from tests.waiting import eventually, until

PASSWORD = "scale out password 1"
TERMINAL = {"completed", "failed", "cancelled"}
INVESTIGATIONS = 9
EXECUTIONS = 6
PLAYBOOK = {
    "id": "scale-out-tag",
    "name": "Read and tag the alert",
    "inputs": {"alert_id": {"type": "string", "required": True}},
    "steps": [
        {"id": "alert", "uses": "alert.get", "with": {"alert_id": "${{ inputs.alert_id }}"}},
        {
            "id": "tag",
            "uses": "alert.tag",
            "with": {"alert_id": "${{ inputs.alert_id }}", "tags": ["seen"]},
        },
    ],
}


@pytest.fixture
def backend() -> str:
    if postgres_admin_url() is None:
        pytest.skip(
            "several gateways share PostgreSQL: set AURORA_TEST_POSTGRES_URL (.ci/run does)"
        )
    return "postgres"


async def running_on(settings: Settings, pid: int) -> str:
    """An investigation the gateway process ``pid`` runs now (read in the shared database)."""
    database = create_database(settings.effective_database_url)
    try:

        async def one() -> str | None:
            async with database.session() as db:
                owners = (
                    await db.execute(
                        select(Investigation.id, Investigation.owner).where(
                            Investigation.status == "running"
                        )
                    )
                ).all()
            return next((i for i, o in owners if o and o.split(":")[1] == str(pid)), None)

        found = await eventually(one, within=60, what=f"an investigation on process {pid}")
        return str(found)
    finally:
        await database.dispose()


async def next_alert(ws: ClientConnection) -> dict[str, Any]:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        if message.get("type") in {"created", "updated"}:
            return dict(message["alert"])


@pytest.fixture
def hole() -> Iterator[str]:
    """A WebSocket URL whose socket accepts connections (the kernel completes them) and never
    answers."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(512)
        yield f"ws://127.0.0.1:{silent.getsockname()[1]}"


async def test_a_killed_gateway_loses_nothing(
    tmp_path: Path, settings: Settings, platforms: list[Platform], hole: str
) -> None:
    shared = {
        "AURORA_DATABASE_URL": settings.effective_database_url,
        "AURORA_JWT_SECRET": "scale-out-secret-scale-out-secret-0123456789",
        "AURORA_ACP_STARTUP_GRACE_SECONDS": "0",
        "AURORA_ACP_CALL_TIMEOUT_SECONDS": "6",
        "AURORA_AGENT_URLS": json.dumps({name: [hole] for name in SPECIALISTS}),
    }
    envs = [{**aurora_env(tmp_path / f"g{i}"), **shared} for i in range(3)]
    created = run(
        envs[0],
        "user",
        "create",
        "admin",
        "--role",
        "admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert created.returncode == 0, created.stderr
    gateways = [Platform(env, "gateway") for env in envs]
    platforms.extend(gateways)
    token = login(gateways[0].url, "admin", PASSWORD)  # one token, good on every replica
    ws = [
        g.url.replace("http://", "ws://") + f"/api/v1/ws/alerts?access_token={token}"
        for g in gateways
    ]
    async with connect(ws[1]) as on_1, connect(ws[2]) as on_2:
        # An alert made on replica 0 reaches the streams of replicas 1 and 2.
        status, alert = http(
            "POST", f"{gateways[0].url}/api/v1/alerts", {"title": "beacon", "source": "e2e"}, token
        )
        assert status == 201, alert
        assert (await next_alert(on_1))["id"] == alert["id"]
        assert (await next_alert(on_2))["id"] == alert["id"]

        # Investigations queued through replica 0, which claims them first (it is woken at
        # once; the others poll): it will be killed while it runs some.
        ids = []
        for n in range(INVESTIGATIONS):
            status, accepted = http(
                "POST",
                f"{gateways[0].url}/api/v1/agents/investigate",
                {"text": f"beacon from 10.0.0.{n + 1} to a rare domain every minute"},
                token,
            )
            assert status == 202, accepted
            ids.append(accepted["id"])
        # And playbook executions, queued the same way.
        status, made = http("POST", f"{gateways[1].url}/api/v1/soar/playbooks", PLAYBOOK, token)
        assert status == 201, made
        for _ in range(EXECUTIONS):
            status, queued = http(
                "POST",
                f"{gateways[1].url}/api/v1/soar/playbooks/{PLAYBOOK['id']}/execute",
                {"inputs": {"alert_id": alert["id"]}},
                token,
            )
            assert status == 202, queued
        # Kill replica 0 while it runs one of the investigations.
        held = await running_on(settings, gateways[0].process.pid)
        assert gateways[0].stop(signal.SIGKILL) == -signal.SIGKILL

        # The survivors' streams go on, fed by each other.
        status, later = http(
            "POST", f"{gateways[1].url}/api/v1/alerts", {"title": "after", "source": "e2e"}, token
        )
        assert status == 201, later
        assert (await next_alert(on_2))["id"] == later["id"]

    # A runtime setting changed on one replica is in force on the others.
    status, _ = http(
        "PATCH", f"{gateways[1].url}/api/v1/settings/runtime", {"mode": "monitor"}, token
    )
    assert status == 200

    def mode_on_2() -> bool:
        _, body = http("GET", f"{gateways[2].url}/api/v1/settings/runtime", token=token)
        return bool(body["settings"]["mode"] == "monitor")

    assert until(mode_on_2, within=30, interval=0.2, what="the mode on replica 2")

    # A session ended on one replica is refused by the others at once.
    other = login(gateways[1].url, "admin", PASSWORD)
    assert http("GET", f"{gateways[2].url}/api/v1/users/me", token=other)[0] == 200
    assert http("POST", f"{gateways[1].url}/api/v1/auth/logout", {}, other)[0] == 204

    def refused_on_2() -> bool:
        return http("GET", f"{gateways[2].url}/api/v1/users/me", token=other)[0] == 401

    assert until(refused_on_2, within=30, interval=0.1, what="the ended session refused")

    def finished() -> list[dict[str, Any]] | None:
        found = []
        for ident in ids:
            status, body = http(
                "GET", f"{gateways[2].url}/api/v1/investigations/{ident}", token=token
            )
            assert status == 200, body
            if body["status"] not in TERMINAL:
                return None
            found.append(body)
        return found

    done = until(finished, within=180, interval=0.5, what="every investigation ended")
    assert done is not None
    assert len({d["id"] for d in done}) == INVESTIGATIONS
    # Each ran once, or was taken over once from the killed replica: never more.
    assert all(1 <= d["attempts"] <= 2 for d in done), [d["attempts"] for d in done]
    assert all(d["receipt"] is not None for d in done if d["status"] == "completed")
    taken_over = next(d for d in done if d["id"] == held)
    assert taken_over["attempts"] == 2

    def executed() -> list[dict[str, Any]] | None:
        status, page = http(
            "GET",
            f"{gateways[2].url}/api/v1/soar/executions?playbook_id={PLAYBOOK['id']}",
            token=token,
        )
        assert status == 200, page
        items = list(page["items"])
        return (
            items
            if len(items) == EXECUTIONS and all(i["status"] in TERMINAL for i in items)
            else None
        )

    runs = until(executed, within=120, interval=0.5, what="every execution ended")
    assert runs is not None
    assert all(r["status"] == "completed" for r in runs), [r["status"] for r in runs]
    assert all(1 <= r["attempts"] <= 2 for r in runs)

    # The survivors logged the unreachable agents (warnings), and nothing went wrong.
    for survivor in gateways[1:]:
        assert not [line for line in survivor.lines if " ERROR " in line or " CRITICAL " in line]
