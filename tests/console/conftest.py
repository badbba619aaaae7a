"""Fixtures of the console's browser tests: one ``aurora up`` and one Chromium shared by the
module's tests (one file: CI hands out whole files to its workers), and users made through the
API as an administrator would make them."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

from tests.agents.threat_intel.test_threat_intel import FEED
from tests.console.browser import artifacts, chromium, launch
from tests.e2e.aurora import Platform, aurora_env, http, login
from tests.fakes.oidc_provider import OidcProvider

ADMIN = "admin"
PASSWORD = "Console-walk-passphrase-1"
ALL_READY = "agents are ready"
SSO_CLIENT = ("aurora-console", "console-client-secret")
SSO_GROUP = "soc-analysts"


@pytest.fixture(scope="module")
def identity_provider() -> Iterator[OidcProvider]:
    """An OpenID Connect provider on a loopback port, served from its own thread (the tests drive
    the browser from this one): whoever the test names signs in there."""
    idp = OidcProvider(client_id=SSO_CLIENT[0], client_secret=SSO_CLIENT[1])
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="oidc-provider", daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(idp.start(), loop).result(timeout=30)
    yield idp
    asyncio.run_coroutine_threadsafe(idp.close(), loop).result(timeout=30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(timeout=30)
    loop.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    chromium()  # skips (or fails under CI) before anything starts when there is none
    for old in artifacts().glob("*"):  # this run's screenshots only
        old.unlink()
    with sync_playwright() as playwright:
        opened = launch(playwright)
        yield opened
        opened.close()


@pytest.fixture(scope="module")
def platform(
    tmp_path_factory: pytest.TempPathFactory, browser: Browser, identity_provider: OidcProvider
) -> Iterator[Platform]:
    """``aurora up`` with a threat feed that lists the walk's address, a policy under which
    blocking an address needs a human, and single sign-on through the test's OIDC provider
    (its analysts' group made analysts)."""
    folder = tmp_path_factory.mktemp("console")
    policy = folder / "guardrails.yaml"
    policy.write_text("actions:\n  block_ip:\n    decision: require_approval\n")
    feed = folder / "feed.json"
    feed.write_text(json.dumps(FEED))
    env = aurora_env(
        folder / "var",
        AURORA_ADMIN_USERNAME=ADMIN,
        AURORA_ADMIN_PASSWORD=PASSWORD,
        AURORA_GUARDRAILS_FILE=str(policy),
        AURORA_INTEL_FEEDS=json.dumps([str(feed)]),
    )
    env["AURORA_OIDC_PROVIDERS"] = json.dumps(
        [
            {
                "id": "corp",
                "name": "Corp SSO",
                "issuer": identity_provider.issuer,
                "client_id": SSO_CLIENT[0],
                "client_secret": SSO_CLIENT[1],
                "roles": [{"group": SSO_GROUP, "role": "analyst"}],
            }
        ]
    )
    identity_provider.redirect_uris.add(
        f"http://127.0.0.1:{env['AURORA_PORT']}/api/v1/auth/oidc/callback"
    )
    started = Platform(env, "up")
    started.wait_for(ALL_READY)
    yield started
    started.close()


@pytest.fixture(scope="module")
def admin_token(platform: Platform) -> str:
    return login(platform.url, ADMIN, PASSWORD)


def make_user(platform: Platform, token: str, username: str, role: str) -> str:
    """A user of ``role`` made by the administrator; its password."""
    password = f"{username}-console-passphrase-7"
    status, body = http(
        "POST",
        f"{platform.url}/api/v1/users",
        {"username": username, "password": password, "role": role},
        token,
    )
    assert status == 201, body
    return password


def data_dir(platform: Platform) -> Path:
    return Path(platform.env["AURORA_DATA_DIR"])
