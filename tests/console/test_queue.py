"""The alert queue with 10,000 alerts: the page stays light and quick (one page of rows in the
DOM, never the whole queue), pages to the end, moves by keyboard, and reports its figures."""

from __future__ import annotations

import json
import time

import pytest
from playwright.sync_api import Browser, expect

from tests.console.browser import artifacts, tab
from tests.console.conftest import data_dir, make_user
from tests.console.seed import seed_alerts
from tests.e2e.aurora import Platform, http

pytestmark = pytest.mark.xdist_group("console")

ALERTS = 10_000
PAGE = 50
DASH = "\N{EN DASH}"  # as the pager writes a range
MAX_PAGE_BYTES = 250_000
"""What a first visit may transfer, the queue's first page included (about 75 kB today)."""
MAX_FIRST_RENDER_SECONDS = 5.0
"""From the sign-in click to the first page of rows (a few hundred ms today; CI is loaded)."""


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
        expect(rows.first).to_contain_text("Seeded alert")

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
