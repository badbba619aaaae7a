"""The analyst's walk and the operator's approval, in a real browser, as new users do them.

An administrator makes two users through the API: Ana, an analyst, and Rita, a responder (who
may approve response actions). Rita switches the platform to active mode in Settings, through
its confirmation, and opens Approvals. A sensor raises an alert; Ana sees it arrive in her queue
without reloading, promotes it to a case, dispatches an investigation of it and watches the
agents' thoughts stream. The responder agent proposes blocking the address the feed lists; the
policy makes that wait for a human; Rita approves it with a comment in her browser, and Ana's
receipt then shows the action executed, approved by Rita, and its tool-call chain verified in
the browser. Screenshots of each step go to the test artifacts.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from tests.console.browser import tab
from tests.console.conftest import ADMIN, PASSWORD, make_user
from tests.e2e.aurora import Platform, http

pytestmark = pytest.mark.xdist_group("console")

ADDRESS = "45.33.32.156"  # listed by the platform's threat feed (tests.console.conftest)
ALERT = {
    "title": "Encoded PowerShell fetched a script from a phishing server",
    "severity": "high",
    "source": "sysmon",
    "rule_id": "proc_creation_win_powershell_download",
    "description": f"User opened an attachment; powershell fetched a script from {ADDRESS}.",
    "entities": [{"type": "ip", "value": ADDRESS}, {"type": "host", "value": "ws-0142"}],
}


def test_the_analyst_walk_and_the_operators_approval(
    platform: Platform, admin_token: str, browser: Browser
) -> None:
    ana_password = make_user(platform, admin_token, "ana", "analyst")
    rita_password = make_user(platform, admin_token, "rita", "responder")
    with (
        tab(browser, platform.url, "walk-admin") as admin,
        tab(browser, platform.url, "walk-rita") as rita,
        tab(browser, platform.url, "walk-ana") as ana,
    ):
        # The administrator turns on active mode, which asks for a typed confirmation.
        admin.sign_in(ADMIN, PASSWORD)
        settings = admin.page
        settings.goto("/#/settings")
        settings.get_by_label(re.compile(r"^\s*Active")).check()
        settings.get_by_role("button", name=re.compile("Switch to Active")).click()
        confirm = settings.get_by_role("dialog")
        expect(confirm).to_contain_text("executed for real")
        switch = confirm.get_by_role("button", name="Switch to active")
        expect(switch).to_be_disabled()
        confirm.get_by_label("Type ACTIVE to confirm").fill("ACTIVE")
        admin.shot("active mode confirmation")
        switch.click()
        expect(settings.locator("a.mode")).to_have_text("mode: active")

        # Rita watches the approvals.
        rita.sign_in("rita", rita_password)
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
        expect(card).to_contain_text("Deciding needs soar:write")

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
