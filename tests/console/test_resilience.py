"""What the console does when things go wrong: a live stream that loses the network reconnects
with backoff, says so, and reloads what it missed; an API error shows its AURORA code and
message; a revoked session ends the streams and returns to the sign-in page."""

from __future__ import annotations

import contextlib

import pytest
from playwright.sync_api import Browser, expect

from tests.console.browser import tab
from tests.console.conftest import make_user
from tests.console.relay import Relay
from tests.e2e.aurora import Platform, http, login

pytestmark = pytest.mark.xdist_group("console")


def test_a_stream_reconnects_and_errors_are_shown(
    platform: Platform, admin_token: str, browser: Browser
) -> None:
    password = make_user(platform, admin_token, "olga", "analyst")
    relay = Relay(int(platform.url.rsplit(":", 1)[1]))
    with contextlib.closing(relay), tab(browser, relay.url, "resilience") as olga:
        olga.sign_in("olga", password)
        page = olga.page
        stream = page.locator("[data-stream-state]").first
        expect(stream).to_have_attribute("data-stream-state", "live")

        # The network goes away (the browser reaches the gateway through a relay the test
        # cuts): the stream says it is reconnecting (and when), then comes back by itself; what
        # arrived meanwhile is in the queue, reloaded on resume.
        relay.cut()
        expect(stream).to_have_attribute("data-stream-state", "reconnecting")
        expect(stream).to_contain_text("attempt")
        olga.shot("stream reconnecting")
        status, missed = http(
            "POST",
            f"{platform.url}/api/v1/alerts",
            {
                "title": "Raised while the analyst was offline",
                "severity": "medium",
                "source": "zeek",
            },
            admin_token,
        )
        assert status == 201, missed
        relay.restore()
        expect(stream).to_have_attribute("data-stream-state", "live", timeout=60_000)
        expect(stream).to_contain_text("1 outage")
        expect(page.locator(f"tr[data-alert-id='{missed['id']}']")).to_be_visible()
        olga.expected_problems(r"WebSocket|ERR_CONNECTION")

        # An API error is shown with its code and message, and changes nothing.
        page.locator(f"tr[data-alert-id='{missed['id']}']").click()
        page.get_by_role("button", name="Link to a case").click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Case id").fill("CASE-2026-99999")
        dialog.get_by_role("button", name="Link").click()
        error = dialog.get_by_role("alert")
        expect(error).to_contain_text("AURORA-404")
        expect(error).to_contain_text("not found")
        olga.shot("error envelope")
        olga.expected_problems(r"status of 404")
        dialog.get_by_role("button", name="Cancel").click()

        # The session is revoked elsewhere (a logout with the same token): the stream ends
        # and the console goes back to its sign-in page, saying why.
        token = page.evaluate(
            """async () => (await import('/console/api.js')).session.get().token"""
        )
        status, _ = http("POST", f"{platform.url}/api/v1/auth/logout", None, token)
        assert status == 204
        expect(page.locator("form#login")).to_be_visible(timeout=60_000)
        olga.shot("session ended")
        olga.expected_problems(r"status of 401")
    assert login(platform.url, "olga", password)  # the account itself still works
