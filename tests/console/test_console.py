"""The web console in a real browser (the machine's Chromium, driven by Playwright), against one
``aurora up``: the analyst's walk with the operator's approval, a stream that loses the network,
errors and a revoked session, and the alert queue with 10,000 alerts. Screenshots of each step
go to the test artifacts (``test-artifacts/console``).

The analyst's walk, as new users do it: an administrator makes two users through the API, Ana,
an analyst, and Rita, an operator. Rita switches the platform to active mode in Settings,
through its confirmation, and opens Approvals. A sensor raises an alert; Ana sees it arrive in
her queue without reloading, promotes it to a case, dispatches an investigation of it and
watches the agents' thoughts stream. The responder agent proposes blocking the address the feed
lists; the policy makes that wait for a human; Rita approves it with a comment in her browser,
and Ana's receipt then shows the action executed, approved by Rita, and its tool-call chain
verified in her browser.
"""

from __future__ import annotations

import contextlib
import json
import re
import time

from playwright.sync_api import Browser, expect

from tests.console.browser import artifacts, tab
from tests.console.conftest import ADMIN, PASSWORD, SSO_GROUP, data_dir, make_user
from tests.console.relay import Relay
from tests.console.seed import seed_alerts
from tests.e2e.aurora import Platform, http, login
from tests.fakes.oidc_provider import OidcProvider

ADDRESS = "45.33.32.156"  # listed by the platform's threat feed (tests.console.conftest)
ALERT = {
    "title": "Encoded PowerShell fetched a script from a phishing server",
    "severity": "high",
    "source": "sysmon",
    "rule_id": "proc_creation_win_powershell_download",
    "description": f"User opened an attachment; powershell fetched a script from {ADDRESS}.",
    "entities": [{"type": "ip", "value": ADDRESS}, {"type": "host", "value": "ws-0142"}],
}
ALERTS = 10_000
PAGE = 50
DASH = "\N{EN DASH}"  # as the pager writes a range
MAX_PAGE_BYTES = 250_000
"""What a first visit may transfer, the queue's first page included (about 65 kB today)."""
MAX_FIRST_RENDER_SECONDS = 5.0
"""From the sign-in click to the first page of rows (a few hundred ms today; CI is loaded)."""


def test_the_analyst_walk_and_the_operators_approval(
    platform: Platform, admin_token: str, browser: Browser
) -> None:
    ana_password = make_user(platform, admin_token, "ana", "analyst")
    rita_password = make_user(platform, admin_token, "rita", "operator")
    with (
        tab(browser, platform.url, "walk-rita") as rita,
        tab(browser, platform.url, "walk-ana") as ana,
    ):
        # Rita, the operator, turns on active mode, which asks for a typed confirmation.
        rita.sign_in("rita", rita_password)
        settings = rita.page
        settings.goto("/#/settings")
        settings.get_by_label(re.compile(r"^\s*Active")).check()
        settings.get_by_role("button", name=re.compile("Switch to Active")).click()
        confirm = settings.get_by_role("dialog")
        expect(confirm).to_contain_text("executed for real")
        switch = confirm.get_by_role("button", name="Switch to active")
        expect(switch).to_be_disabled()
        confirm.get_by_label("Type ACTIVE to confirm").fill("ACTIVE")
        rita.shot("active mode confirmation")
        switch.click()
        expect(settings.locator("a.mode")).to_have_text("mode: active")

        # Then she watches the approvals.
        rita.page.goto("/#/approvals")
        expect(rita.page.locator("[data-stream-state]").first).to_have_attribute(
            "data-stream-state", "live"
        )

        # Ana signs in for the first time: her queue is live.
        ana.sign_in("ana", ana_password)
        page = ana.page
        expect(page.get_by_role("heading", name="Alert queue")).to_be_visible()
        expect(page.locator("[data-stream-state]").first).to_have_attribute(
            "data-stream-state", "live"
        )
        ana.shot("signed in")

        # A sensor raises the alert: it appears at the top of her queue without a reload.
        status, alert = http("POST", f"{platform.url}/api/v1/alerts", ALERT, admin_token)
        assert status == 201, alert
        row = page.locator(f"tr[data-alert-id='{alert['id']}']")
        expect(row).to_be_visible()
        expect(page.locator("#alert-table tbody tr").first).to_have_attribute(
            "data-alert-id", alert["id"]
        )
        ana.shot("alert arrived live")

        # She promotes it to a case.
        row.click()
        page.get_by_role("button", name="Promote to case").click()
        page.get_by_role("dialog").get_by_role("button", name="Open the case").click()
        page.wait_for_url(re.compile(r"#/cases/CASE-"))
        case_id = page.url.rsplit("/", 1)[-1]
        expect(page.locator("main")).to_contain_text(alert["id"])
        ana.shot("case opened")

        # She adds the capture as evidence (uploaded as multipart); its ledger verifies.
        page.get_by_role("link", name="Evidence").click()
        evidence = page.get_by_role("form", name="Add evidence")
        capture = {"name": "beacon.pcap", "mimeType": "application/vnd.tcpdump.pcap"}
        evidence.locator("input[type=file]").set_input_files(
            files=[{**capture, "buffer": b"\xd4\xc3\xb2\xa1" + bytes(60)}]
        )
        evidence.locator("input[name=reason]").fill("Capture of the beacon from the sensor")
        evidence.get_by_role("button", name="Add evidence").click()
        row = page.get_by_role("table", name="Evidence").locator("tr", has_text="beacon.pcap")
        expect(row).to_be_visible()
        row.get_by_role("button", name="Ledger").click()
        expect(page.locator("main")).to_contain_text("Ledger verified")
        ana.shot("evidence and its ledger")
        # A task and a comment on the case.
        page.get_by_role("link", name="Tasks").click()
        tasks = page.get_by_role("form", name="Add a task")
        tasks.locator("input[name=title]").fill("Block the address at the proxy")
        tasks.get_by_role("button", name="Add task").click()
        expect(page.locator("main")).to_contain_text("Block the address at the proxy")
        page.get_by_role("link", name="Comments").click()
        comments = page.get_by_role("form", name="Add a comment")
        comments.locator("textarea[name=body]").fill("Beacon every 60 s to the feed's address.")
        comments.get_by_role("button", name="Comment").click()
        expect(page.locator("main")).to_contain_text("Beacon every 60 s to the feed's address.")

        # Back in the queue the alert names its case; she dispatches an investigation of it.
        page.goto(f"/#/alerts?focus={alert['id']}")
        detail = page.locator("#alert-detail")
        expect(detail).to_contain_text(case_id)
        detail.get_by_role("button", name="Investigate").click()
        page.wait_for_url(re.compile(r"#/investigations/INV-"))
        investigation_id = page.url.rsplit("/", 1)[-1]

        # The agents' thoughts stream in as they work.
        thoughts = page.locator("#thoughts .thought")
        expect(thoughts.first).to_be_visible()
        ana.shot("thoughts streaming")

        # Blocking the address waits for a human: Ana sees the request but may not decide.
        card = page.locator("article.approval")
        expect(card).to_contain_text(ADDRESS)
        expect(card).to_contain_text("Deciding needs soar:write or system:write")

        # Rita, on her Approvals screen, sees it with its reasons and the time left, and
        # approves it with a comment.
        request = rita.page.locator(f"article.approval[data-approval-id='{investigation_id}/A1']")
        expect(request).to_contain_text("block_ip")
        expect(request).to_contain_text(ADDRESS)
        expect(request.get_by_role("timer")).to_contain_text("left")
        request.get_by_label("Comment").fill("Listed by our feed; block it.")
        rita.shot("approval requested")
        request.get_by_role("button", name="Approve").click()
        expect(request).to_contain_text("approved")
        expect(request).to_contain_text("by rita")
        rita.shot("approved")

        # Ana's receipt: the verdict, the techniques with their evidence, the action executed
        # as Rita approved it, and the tool-call chain recomputed in her browser.
        receipt = page.locator("#receipt")
        expect(receipt).to_be_visible(timeout=60_000)
        expect(page.locator(".toolbar .status-completed")).to_be_visible()
        expect(receipt).to_contain_text("Techniques")
        actions = receipt.get_by_role("table", name="Response actions")
        expect(actions).to_contain_text("block_ip")
        expect(actions).to_contain_text("executed")
        expect(actions).to_contain_text("approved by rita: Listed by our feed; block it.")
        page.get_by_role("button", name="Verify the chain in this browser").click()
        expect(page.locator("#chain-result")).to_contain_text("Chain verified")
        ana.shot("receipt verified")

        # The same check refuses a receipt whose tool calls were edited.
        verdicts = page.evaluate(
            """async (id) => {
                const { api } = await import('/console/api.js');
                const { verifyChain } = await import('/console/chain.js');
                const { receipt } = await api('GET', `/investigations/${id}`);
                const edited = structuredClone(receipt);
                edited.tool_calls[0].summary += ' (edited)';
                return [(await verifyChain(receipt)).ok, (await verifyChain(edited)).ok];
            }""",
            investigation_id,
        )
        assert verdicts == [True, False]


SCREENS = (
    ("alerts", "Alert queue"),
    ("cases", "Cases"),
    ("investigations", "Investigations"),
    ("approvals", "Approvals"),
    ("siem", "SIEM"),
    ("detections", "Detections"),
    ("soar", "SOAR"),
    ("soar/executions", "SOAR"),
    ("soar/rules", "SOAR"),
    ("edr", "EDR"),
    ("network", "Network"),
    ("network/findings", "Network"),
    ("network/telemetry", "Network"),
    ("network/coverage", "Network"),
    ("fleet", "Fleet"),
    ("fleet/threat_intel", "Threat intel"),
    ("chat", "Chat"),
    ("settings", "Settings"),
)


def test_every_screen_renders_and_chat_streams(platform: Platform, browser: Browser) -> None:
    """Each screen an administrator can reach loads its data without a script error, a CSP
    violation or an error box; the assistant answers a built-in command, streamed."""
    with tab(browser, platform.url, "screens") as admin:
        admin.sign_in(ADMIN, PASSWORD)
        page = admin.page
        for path, heading in SCREENS:
            page.goto(f"/#/{path}")
            expect(page.get_by_role("heading", level=1).first).to_contain_text(heading)
            expect(page.locator("main .muted", has_text="Loading")).to_have_count(0)
            expect(page.locator("main .error")).to_have_count(0)
            admin.shot(path)

        page.goto("/#/chat")
        page.get_by_role("button", name="New conversation").click()
        page.wait_for_url(re.compile(r"#/chat/"))
        page.get_by_label("Message").fill("help")
        page.get_by_role("button", name="Send").click()
        answer = page.locator("article.chat-assistant").last
        expect(answer).to_be_visible()
        expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=30_000)
        expect(answer.locator(".chat-text")).not_to_be_empty()
        expect(page.locator("main .error")).to_have_count(0)
        admin.shot("chat answered")


def test_single_sign_on_and_the_keyboard_first(
    platform: Platform, identity_provider: OidcProvider, browser: Browser
) -> None:
    """The sign-in page offers the configured provider; its button goes through the provider
    and back (authorisation code with PKCE), and the platform hands the session to the console
    in the URL fragment, which the console takes and leaves no trace of in the address or the
    history. The user is made on the way, an analyst by the group the provider gives. The first
    Tab reaches "Skip to content", which moves the focus to the screen."""
    identity_provider.user = {
        "sub": "corp-7731",
        "preferred_username": "sasha",
        "email": "sasha@corp.example",
        "groups": [SSO_GROUP],
    }
    with tab(browser, platform.url, "sso") as user:
        page = user.page
        page.goto("/")
        sso = page.get_by_role("link", name="Corp SSO (OIDC)")
        expect(sso).to_be_visible()
        user.shot("sign-in choices")
        sso.click()
        expect(page.locator("header.top .user")).to_have_text("sasha")
        expect(page.locator("header.top .user")).to_have_attribute("title", "role: analyst")
        assert "access_token" not in page.url
        assert "access_token" not in page.evaluate("() => location.href + document.body.innerHTML")
        assert len(identity_provider.token_requests) == 1  # the code was exchanged once
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to content")
        expect(skip).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("main#main")).to_be_focused()
        user.shot("signed in by fragment")
        # The history holds no token either: back, then forward, lands on a clean address
        # (and, the token being in memory only, on the sign-in page).
        page.go_back()
        page.go_forward()
        expect(page.locator("form#login")).to_be_visible()
        assert "access_token" not in page.url


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
        olga.expected_problems(r"WebSocket|net::ERR_")  # requests caught by the cut

        # A repeat merged by the platform counts up in place; a repeat after the first was
        # resolved is a new alert, folded under it in the queue.
        repeat = {"title": "Beacon to a parked domain", "severity": "low", "source": "zeek"}
        first = http("POST", f"{platform.url}/api/v1/alerts", repeat, admin_token)[1]
        merged = {**repeat, "on_duplicate": "merge"}
        assert http("POST", f"{platform.url}/api/v1/alerts", merged, admin_token)[0] == 200
        row = page.locator(f"tr[data-alert-id='{first['id']}']")
        expect(row).to_contain_text("2\N{MULTIPLICATION SIGN}")
        # Resolving follows the workflow: a new alert is acknowledged first.
        row.click()
        detail = page.locator("#alert-detail")
        expect(detail.get_by_role("button", name="Resolve")).to_be_disabled()
        detail.get_by_role("button", name="Acknowledge").click()
        detail.get_by_role("button", name="Resolve").click()
        expect(row).to_contain_text("resolved")
        again = http("POST", f"{platform.url}/api/v1/alerts", repeat, admin_token)[1]
        assert again["id"] != first["id"]
        fold = page.get_by_role("button", name="+1 alike")
        expect(fold).to_be_visible()
        expect(page.locator(f"tr[data-alert-id='{first['id']}']")).to_have_count(0)
        fold.click()
        expect(page.locator(f"tr[data-alert-id='{first['id']}']")).to_contain_text("↳")
        olga.shot("repeats folded")

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


def test_the_queue_with_ten_thousand_alerts(
    platform: Platform, admin_token: str, browser: Browser
) -> None:
    seed_alerts(data_dir(platform), ALERTS)
    status, listed = http("GET", f"{platform.url}/api/v1/alerts?limit=1", token=admin_token)
    assert status == 200, listed
    total = listed["total"]  # the module's other tests may have added a few
    assert total >= ALERTS
    password = make_user(platform, admin_token, "quinn", "analyst")
    with tab(browser, platform.url, "queue") as queue:
        page = queue.page
        page.goto("/")
        page.get_by_label("Username").fill("quinn")
        page.get_by_label("Password").fill(password)
        started = time.perf_counter()
        page.get_by_role("button", name="Sign in").click()
        rows = page.locator("#alert-table tbody tr")
        expect(rows).to_have_count(PAGE)
        first_render = time.perf_counter() - started
        pager = page.locator(".pager span")
        expect(pager).to_contain_text(f"1{DASH}{PAGE} of {total:,}")
        queue.shot("queue of ten thousand")
        weight = page.evaluate(
            """() => [...performance.getEntriesByType('navigation'),
                      ...performance.getEntriesByType('resource')]
                     .reduce((sum, e) => sum + e.transferSize, 0)"""
        )
        dom_nodes = page.evaluate("() => document.getElementsByTagName('*').length")

        page.get_by_role("button", name="Last »").click()
        last = (total - 1) // PAGE * PAGE
        expect(pager).to_contain_text(f"{last + 1:,}{DASH}{total:,} of {total:,}")
        expect(rows).to_have_count(total - last)

        # The keyboard moves through the page: j/k select, Enter reaches the actions.
        page.get_by_role("button", name="« First").click()
        expect(pager).to_contain_text(f"1{DASH}{PAGE} of")
        rows.first.focus()
        page.keyboard.press("j")
        page.keyboard.press("j")
        expect(rows.nth(2)).to_have_attribute("aria-selected", "true")
        expect(page.locator("#alert-title")).to_have_text(
            rows.nth(2).locator("td.title").inner_text().strip()
        )
        page.keyboard.press("k")
        expect(rows.nth(1)).to_have_attribute("aria-selected", "true")
        page.keyboard.press("Enter")
        expect(page.locator("#alert-title")).to_be_focused()
        expect(rows.nth(1)).to_contain_text("new")  # the key only moved the focus
        queue.shot("keyboard selection")

    figures = {
        "alerts": total,
        "first_render_seconds": round(first_render, 3),
        "page_bytes": weight,
        "dom_elements": dom_nodes,
    }
    (artifacts() / "queue-figures.json").write_text(json.dumps(figures, indent=2))
    assert weight < MAX_PAGE_BYTES, figures
    assert first_render < MAX_FIRST_RENDER_SECONDS, figures
    assert dom_nodes < 3000, figures
