"""Password login: JSON and form, uniform refusals, lockout (under parallel guesses too, and
across replicas), validation, providers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.db import create_database
from core.db.migrate import upgrade
from core.security.passwords import PasswordHasher
from core.security.permissions import Role
from core.settings import Settings
from gateway.auth.models import LoginThrottle
from gateway.auth.service import purge_login_throttles
from gateway.keys import DATABASE, HASHER
from tests.conftest import PASSWORD, Gateway, make_settings, start_gateway

TOKEN = "/api/v1/auth/token"
ME = "/api/v1/users/me"
WRONG = "definitely not it"


async def _login(gateway: Gateway, username: str, password: str) -> tuple[int, dict[str, Any]]:
    response = await gateway.client.post(TOKEN, json={"username": username, "password": password})
    return response.status, dict(await response.json())


def _code(body: dict[str, Any]) -> object:
    error = body.get("error")
    return error.get("code") if isinstance(error, dict) else None


@pytest.fixture
async def quick_lockout(tmp_path: Path, database_url: str) -> AsyncIterator[Gateway]:
    """A gateway that locks an account for a minute after two failures (the tests move the
    login service's clock past it: a real-time second was too short on a loaded machine, where
    three logins could outlast it)."""
    settings = make_settings(
        tmp_path / "quick", database_url, login_lockout_seconds=60, login_max_failures=2
    )
    database = create_database(settings.effective_database_url)
    try:
        await upgrade(database)
    finally:
        await database.dispose()
    client = await start_gateway(settings)
    try:
        yield Gateway(client)
    finally:
        await client.close()


async def test_json_login(gateway: Gateway, settings: Settings) -> None:
    await gateway.create_user("json-user", Role.ANALYST)
    response = await gateway.client.post(
        TOKEN, json={"username": "json-user", "password": PASSWORD}
    )
    body = await response.json()
    assert response.status == 200, body
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_ttl_seconds
    assert response.headers.get("Cache-Control") == "no-store"
    me = await gateway.client.get(ME, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status == 200
    assert (await me.json())["username"] == "json-user"


async def test_form_login(gateway: Gateway, settings: Settings) -> None:
    await gateway.create_user("form-user", Role.VIEWER)
    response = await gateway.client.post(
        TOKEN, data={"grant_type": "password", "username": "form-user", "password": PASSWORD}
    )
    body = await response.json()
    assert response.request_info.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert response.status == 200, body
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == settings.access_token_ttl_seconds
    me = await gateway.client.get(ME, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert (await me.json())["username"] == "form-user"


async def test_wrong_password_and_unknown_user_look_the_same(gateway: Gateway) -> None:
    await gateway.create_user("real-user", Role.VIEWER)
    wrong_status, wrong = await _login(gateway, "real-user", WRONG)
    unknown_status, unknown = await _login(gateway, "ghost-user", WRONG)
    assert (wrong_status, _code(wrong)) == (401, "AURORA-4012")
    assert (unknown_status, _code(unknown)) == (401, "AURORA-4012")
    strip = {"timestamp", "request_id"}
    same_wrong = {k: v for k, v in wrong["error"].items() if k not in strip}
    same_unknown = {k: v for k, v in unknown["error"].items() if k not in strip}
    assert same_wrong == same_unknown
    assert WRONG not in json.dumps(wrong)


async def test_lockout_after_max_failures(gateway: Gateway, settings: Settings) -> None:
    await gateway.create_user("target", Role.VIEWER)
    for _ in range(settings.login_max_failures):
        status, body = await _login(gateway, "target", WRONG)
        assert (status, _code(body)) == (401, "AURORA-4012")
    response = await gateway.client.post(TOKEN, json={"username": "target", "password": PASSWORD})
    body = await response.json()
    assert response.status == 429
    assert body["error"]["code"] == "AURORA-4290"
    retry_after = response.headers.get("Retry-After", "")
    assert retry_after.isdigit()
    assert 1 <= int(retry_after) <= settings.login_lockout_seconds + 1
    assert "access_token" not in body
    # Another user is not affected.
    await gateway.create_user("bystander", Role.VIEWER)
    assert (await _login(gateway, "bystander", PASSWORD))[0] == 200


async def test_lockout_does_not_reveal_which_usernames_exist(
    gateway: Gateway, settings: Settings
) -> None:
    await gateway.create_user("real-user", Role.VIEWER)
    answers: dict[str, list[tuple[int, object]]] = {}
    for name in ("real-user", "ghost-user"):
        answers[name] = []
        for _ in range(settings.login_max_failures + 1):
            status, body = await _login(gateway, name, WRONG)
            answers[name].append((status, _code(body)))
    assert answers["real-user"] == answers["ghost-user"]
    assert answers["ghost-user"][-1] == (429, "AURORA-4290")


async def test_failures_below_the_limit_do_not_lock(gateway: Gateway, settings: Settings) -> None:
    await gateway.create_user("almost", Role.VIEWER)
    for _ in range(settings.login_max_failures - 1):
        assert (await _login(gateway, "almost", WRONG))[0] == 401
    assert (await _login(gateway, "almost", PASSWORD))[0] == 200


async def test_successful_login_resets_the_failure_count(
    gateway: Gateway, settings: Settings
) -> None:
    await gateway.create_user("forgetful", Role.VIEWER)
    for _ in range(2):
        for _ in range(settings.login_max_failures - 1):
            assert (await _login(gateway, "forgetful", WRONG))[0] == 401
        status, body = await _login(gateway, "forgetful", PASSWORD)
        assert status == 200, body


def _clock_ahead(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The login service's clock, ``seconds`` ahead of the real one (no waiting for it)."""
    monkeypatch.setattr(
        "gateway.auth.service.utcnow", lambda: datetime.now(UTC) + timedelta(seconds=seconds)
    )


async def test_lockout_expires(quick_lockout: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    gateway = quick_lockout
    await gateway.create_user("patient", Role.VIEWER)
    for _ in range(2):
        assert (await _login(gateway, "patient", WRONG))[0] == 401
    status, body = await _login(gateway, "patient", PASSWORD)
    assert (status, _code(body)) == (429, "AURORA-4290")
    _clock_ahead(monkeypatch, 61)  # the lockout's minute has passed
    status, body = await _login(gateway, "patient", PASSWORD)
    assert status == 200, body
    assert body["token_type"] == "bearer"


async def test_missing_password_is_422(gateway: Gateway) -> None:
    response = await gateway.client.post(TOKEN, json={"username": "someone"})
    body = await response.json()
    assert response.status == 422
    assert body["error"]["code"] == "AURORA-4220"
    detail = body["error"]["detail"]
    assert [d["loc"] for d in detail] == [["body", "password"]]
    assert detail[0]["type"] == "missing"


async def test_missing_form_field_is_422(gateway: Gateway) -> None:
    response = await gateway.client.post(TOKEN, data={"password": PASSWORD})
    body = await response.json()
    assert response.status == 422
    assert body["error"]["code"] == "AURORA-4220"
    assert [d["loc"] for d in body["error"]["detail"]] == [["body", "username"]]


SECRET = "s3cret-Password-value"


async def test_validation_detail_never_echoes_the_password(gateway: Gateway) -> None:
    bodies: list[tuple[str, bytes]] = [
        ("empty username", json.dumps({"username": "", "password": SECRET}).encode()),
        ("long username", json.dumps({"username": "x" * 65, "password": SECRET}).encode()),
        ("long password", json.dumps({"username": "someone", "password": SECRET * 60}).encode()),
        (
            "bad grant",
            json.dumps({"username": "a", "password": SECRET, "grant_type": "x"}).encode(),
        ),
        ("list username", json.dumps({"username": [SECRET], "password": SECRET}).encode()),
        ("password as name", json.dumps({"username": {"n": SECRET}, "password": 1}).encode()),
        ("malformed JSON", f'{{"username": "a", "password": "{SECRET}'.encode()),
    ]
    leaks = []
    for case, raw in bodies:
        response = await gateway.client.post(
            TOKEN, data=raw, headers={"Content-Type": "application/json"}
        )
        text = await response.text()
        code = json.loads(text)["error"]["code"]
        if (response.status, code) != (422, "AURORA-4220") or SECRET in text:
            leaks.append((case, response.status, code, SECRET in text))
    assert leaks == []


async def test_providers_is_public_and_lists_local(gateway: Gateway) -> None:
    response = await gateway.client.get("/api/v1/auth/providers")
    body = await response.json()
    assert response.status == 200
    assert body == {
        "providers": [
            {"id": "local", "type": "password", "name": "Username and password", "login_url": TOKEN}
        ]
    }


class HeldChecks:
    """Counts the password checks the hashers run and holds each (those of ``only``, when
    given) until :meth:`release`, so a test can have many logins in flight at once."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *hashers: PasswordHasher) -> None:
        self.checked: list[str] = []
        self.answered = 0
        self.only: str | None = None
        self._changed = asyncio.Condition()
        self._released = asyncio.Event()
        for hasher in hashers:
            monkeypatch.setattr(hasher, "verify_async", self._holding(hasher.verify_async))

    def _holding(
        self, verify: Callable[[str | None, str], Any]
    ) -> Callable[[str | None, str], Any]:
        async def held(password_hash: str | None, password: str) -> bool:
            async with self._changed:
                self.checked.append(password)
                self._changed.notify_all()
            if self.only is None or password == self.only:
                await self._released.wait()
            return bool(await verify(password_hash, password))

        return held

    async def until(self, ready: Callable[[], bool]) -> None:
        async with asyncio.timeout(30), self._changed:
            await self._changed.wait_for(ready)

    async def attempt(self, gateway: Gateway, username: str, password: str) -> int:
        status, _ = await _login(gateway, username, password)
        async with self._changed:
            self.answered += 1
            self._changed.notify_all()
        return status

    def release(self) -> None:
        self._released.set()


async def _burst(
    held: HeldChecks, gateways: list[Gateway], username: str, passwords: list[str]
) -> list[int]:
    """Send every login at once (round-robin over ``gateways``); release the held checks once
    each is either being checked or answered; the statuses in the order sent."""
    settled = len(held.checked) + held.answered + len(passwords)
    tasks = [
        asyncio.create_task(held.attempt(gateways[n % len(gateways)], username, password))
        for n, password in enumerate(passwords)
    ]
    await held.until(lambda: len(held.checked) + held.answered == settled)
    held.release()
    return list(await asyncio.gather(*tasks))


async def test_parallel_guesses_get_at_most_the_limit_of_checks(
    gateway: Gateway, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = settings.login_max_failures
    await gateway.create_user("burst", Role.VIEWER)
    held = HeldChecks(monkeypatch, gateway.app[HASHER])
    # The right password is being checked when 39 wrong guesses arrive together.
    right = asyncio.create_task(held.attempt(gateway, "burst", PASSWORD))
    await held.until(lambda: held.checked == [PASSWORD])
    wrong = await _burst(held, [gateway], "burst", [f"guess {n}" for n in range(39)])
    assert await right == 200
    assert len(held.checked) == limit
    assert sorted(wrong) == [401] * (limit - 1) + [429] * (40 - limit)
    # Its success does not lift the lock the guesses set meanwhile.
    status, body = await _login(gateway, "burst", PASSWORD)
    assert (status, _code(body)) == (429, "AURORA-4290")


async def test_parallel_guesses_at_an_unknown_name_look_the_same(
    gateway: Gateway, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = settings.login_max_failures
    await gateway.create_user("real-user", Role.VIEWER)
    seen = {}
    for name in ("real-user", "ghost-user"):
        held = HeldChecks(monkeypatch, gateway.app[HASHER])
        statuses = await _burst(held, [gateway], name, [WRONG] * 40)
        seen[name] = (len(held.checked), sorted(statuses))
    assert seen["real-user"] == seen["ghost-user"]
    assert seen["ghost-user"] == (limit, [401] * limit + [429] * (40 - limit))


async def test_the_limit_holds_across_replicas(
    gateway: Gateway, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = settings.login_max_failures
    await gateway.create_user("shared", Role.VIEWER)
    replica = Gateway(await start_gateway(settings))
    try:
        held = HeldChecks(monkeypatch, gateway.app[HASHER], replica.app[HASHER])
        statuses = await _burst(held, [gateway, replica], "shared", [WRONG] * 40)
        assert len(held.checked) == limit
        assert sorted(statuses) == [401] * limit + [429] * (40 - limit)
        for either in (gateway, replica):
            status, body = await _login(either, "shared", PASSWORD)
            assert (status, _code(body)) == (429, "AURORA-4290")
    finally:
        await replica.client.close()


async def test_a_success_does_not_forgive_failures_that_ran_meanwhile(
    gateway: Gateway, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = settings.login_max_failures
    await gateway.create_user("overlap", Role.VIEWER)
    assert (await _login(gateway, "overlap", WRONG))[0] == 401
    held = HeldChecks(monkeypatch, gateway.app[HASHER])
    held.only = PASSWORD  # only the right password's check waits
    right = asyncio.create_task(held.attempt(gateway, "overlap", PASSWORD))
    await held.until(lambda: held.checked == [PASSWORD])
    for _ in range(limit - 3):
        assert (await _login(gateway, "overlap", WRONG))[0] == 401
    held.release()
    assert await right == 200
    # The failures that ran while it was checked still count: two more reach the limit.
    for _ in range(2):
        assert (await _login(gateway, "overlap", WRONG))[0] in {401, 429}
    status, body = await _login(gateway, "overlap", PASSWORD)
    assert (status, _code(body)) == (429, "AURORA-4290")


async def test_failures_are_forgotten_when_their_window_ends(
    quick_lockout: Gateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = quick_lockout  # two failures within a minute lock the account for a minute
    await gateway.create_user("spaced", Role.VIEWER)
    assert (await _login(gateway, "spaced", WRONG))[0] == 401
    _clock_ahead(monkeypatch, 61)  # the window runs on the clock
    assert (await _login(gateway, "spaced", WRONG))[0] == 401
    status, body = await _login(gateway, "spaced", PASSWORD)
    assert status == 200, body


async def test_ended_windows_are_purged(gateway: Gateway) -> None:
    now = datetime.now(UTC)
    async with gateway.app[DATABASE].session() as db:
        db.add(LoginThrottle(username="old", checks=3, window_ends_at=now - timedelta(seconds=1)))
        db.add(LoginThrottle(username="live", checks=3, window_ends_at=now + timedelta(hours=1)))
        await db.commit()
        assert await purge_login_throttles(db=db) == 1
        assert list(await db.scalars(select(LoginThrottle.username))) == ["live"]
