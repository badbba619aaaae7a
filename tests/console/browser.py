"""The web console in a real browser: the machine's own Chromium, driven by Playwright (no
browser download), one fresh profile per test, and what the page logged kept for the test to
check (a script error or a CSP violation fails it). Screenshots go to ``test-artifacts/console``
(or ``AURORA_TEST_ARTIFACTS``)."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Error, Page, Playwright

ROOT = Path(__file__).resolve().parents[2]
VIEWPORT = {"width": 1280, "height": 800}
"""The issue's smallest screen: every screen must be readable at this size."""
ARGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def chromium() -> str:
    """The system Chromium; skips (or fails where CI requires it) when there is none."""
    found = os.environ.get("AURORA_CHROMIUM") or next(
        filter(None, (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))),
        None,
    )
    if found:
        return found
    reason = (
        "no Chromium: install Debian's chromium package (bash .ci/run does) or set AURORA_CHROMIUM"
    )
    if os.environ.get("AURORA_REQUIRE_CHROMIUM") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


def artifacts() -> Path:
    folder = Path(os.environ.get("AURORA_TEST_ARTIFACTS", ROOT / "test-artifacts")) / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def launch(playwright: Playwright) -> Browser:
    return playwright.chromium.launch(executable_path=chromium(), args=ARGS)


class Tab:
    """One signed-out browser context at 1280 by 800 and its page, with what the page said."""

    def __init__(self, browser: Browser, url: str, name: str) -> None:
        self.url = url
        self.name = name
        self.context = browser.new_context(
            viewport=VIEWPORT, base_url=url, locale="en-US", timezone_id="UTC"
        )
        self.page: Page = self.context.new_page()
        self.problems: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda err: self.problems.append(f"page error: {err}"))
        self.shots = 0

    def _console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.problems.append(f"console error: {message.text}")

    def sign_in(self, username: str, password: str) -> None:
        page = self.page
        page.goto("/")
        page.locator("form#login").wait_for()
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Sign in").click()
        page.locator("header.top").wait_for()

    def shot(self, label: str) -> Path:
        """A screenshot of the whole page, numbered in the order taken."""
        self.shots += 1
        slug = re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-")
        path = artifacts() / f"{self.name}-{self.shots:02d}-{slug}.png"
        self.page.screenshot(path=path, full_page=True)
        return path

    def expected_problems(self, pattern: str) -> None:
        """Forget what the page logged that matches ``pattern`` (an error the test caused)."""
        self.problems = [p for p in self.problems if not re.search(pattern, p)]

    def close(self) -> None:
        with contextlib.suppress(Error):
            self.context.close()


@contextmanager
def tab(browser: Browser, url: str, name: str) -> Iterator[Tab]:
    """A tab that fails the test if the page logged a script error or a CSP violation."""
    opened = Tab(browser, url, name)
    try:
        yield opened
        assert not opened.problems, "\n".join(opened.problems)
    except BaseException:
        with contextlib.suppress(Error):
            opened.shot("failure")
        raise
    finally:
        opened.close()
