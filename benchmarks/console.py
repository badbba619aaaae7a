"""The web console's alert queue with 10,000 alerts: page weight and time to first render.

A gateway on a loopback port over a fresh SQLite database holding ``--alerts`` alerts (as the
alerts service writes them, in one bulk insert); the machine's Chromium (``--chromium``, else
``chromium`` on the PATH) driven by Playwright. Each of ``--runs`` visits starts from a fresh
browser profile: the sign-in page is loaded, then the time from submitting it to the queue's
first page of rows on screen is measured. Reported, medians over the runs:

- first render: from the sign-in form's submit to the first frame painted with 50 rows;
- its baseline, in the same run: the three API calls the console makes for it (token, the
  user's profile, the first page of alerts) made back to back by a Python client, so the ratio
  is what the browser, the scripts and the rendering add;
- first contentful paint of the sign-in page, and the JavaScript heap once the queue shows;
- page weight: bytes transferred (compressed) for the console's own files and for the API's
  answers, and the number of DOM elements (one page of rows, never the whole queue).

    .venv/bin/python -m benchmarks.console [--alerts 10000] [--runs 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import (
    ADMIN_PASSWORD,
    HOST,
    free_port,
    gateway_settings,
    prepare,
    run_gateway,
)
from core.db import create_database
from core.db.base import utcnow
from core.db.sequences import next_ids
from core.schemas import Severity
from gateway.alerts.models import Alert
from gateway.alerts.schemas import AlertCreate
from gateway.alerts.service import fingerprint, normalise_entities

PAGE = 50
SOURCES = ("suricata", "sysmon", "zeek", "okta", "crowdstrike")


async def seed(url: str, count: int) -> None:
    """``count`` distinct alerts in the database at ``url``, as the alerts service would write
    them (its normalisation, fingerprint and numbering), in one bulk insert: creating them one
    by one through the service or the API takes minutes at this size."""
    severities = list(Severity)
    now = utcnow()
    rows = []
    for n in range(count):
        body = AlertCreate(
            title=f"Seeded alert {n}: outbound connection from host-{n % 97}",
            severity=severities[n % len(severities)],
            source=SOURCES[n % len(SOURCES)],
            rule_id=f"SEED-{n % 13}",
            tags=["seeded"],
            entities=[{"type": "host", "value": f"host-{n % 97}.corp.example"}],
        )
        entities = normalise_entities(body.entities)
        at = now - timedelta(milliseconds=count - n)  # the last made is the newest
        rows.append(
            {
                "title": body.title,
                "severity": body.severity.value,
                "status": "new",
                "source": body.source,
                "rule_id": body.rule_id,
                "tags": body.tags,
                "entities": entities,
                "fingerprint": fingerprint(
                    source=body.source, rule_id=body.rule_id, title=body.title, entities=entities
                ),
                "first_seen": at,
                "last_seen": at,
                "created_by": "seeder",
                "created_at": at,
                "updated_at": at,
            }
        )
    database = create_database(url)
    try:
        async with database.session() as db:
            for row, alert_id in zip(rows, await next_ids(db, "ALRT", count), strict=True):
                row["id"] = alert_id
            await db.execute(insert(Alert), rows)
            await db.commit()
    finally:
        await database.dispose()


def call(method: str, url: str, body: dict[str, Any] | None = None, token: str = "") -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (loopback)
    request.add_header("Accept-Encoding", "gzip")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (loopback)
        return response.read()


def api_baseline(base: str, username: str) -> float:
    """Seconds for the console's three sign-in calls made back to back from Python."""
    started = time.perf_counter()
    token = json.loads(
        call(
            "POST", f"{base}/api/v1/auth/token", {"username": username, "password": ADMIN_PASSWORD}
        )
    )["access_token"]
    call("GET", f"{base}/api/v1/users/me", token=token)
    call("GET", f"{base}/api/v1/alerts?sort=-created_at&limit={PAGE}&offset=0", token=token)
    return time.perf_counter() - started


def visit(browser: Any, base: str, username: str) -> dict[str, float]:
    """One visit from a fresh profile: the figures of its sign-in and first page of rows."""
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=base)
    try:
        page = context.new_page()
        page.goto("/")
        page.locator("form#login").wait_for()
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password").fill(ADMIN_PASSWORD)
        # Timed in the page: from the sign-in form's submit event to the first frame painted
        # with the page of rows in the DOM (the driver's own latency is left out).
        page.evaluate(
            """(rows) => {
                document.addEventListener('submit', (e) => { window.__submitted = e.timeStamp; },
                                          true);
                new MutationObserver((_, observer) => {
                    if (document.querySelectorAll('#alert-table tbody tr').length < rows) return;
                    observer.disconnect();
                    requestAnimationFrame(() => setTimeout(() => {
                        window.__rendered = performance.now();
                    }));
                }).observe(document.body, { childList: true, subtree: true });
            }""",
            PAGE,
        )
        page.get_by_role("button", name="Sign in").click()
        page.locator(f"#alert-table tbody tr:nth-child({PAGE})").wait_for()
        rendered = page.evaluate(
            """async () => {
                while (window.__rendered === undefined) await new Promise(requestAnimationFrame);
                return (window.__rendered - window.__submitted) / 1000;
            }"""
        )
        figures = page.evaluate(
            """() => {
                const entries = [...performance.getEntriesByType('navigation'),
                                 ...performance.getEntriesByType('resource')];
                const own = entries.filter(e => !new URL(e.name).pathname.startsWith('/api/'));
                const api = entries.filter(e => new URL(e.name).pathname.startsWith('/api/'));
                const sum = (list) => list.reduce((total, e) => total + e.transferSize, 0);
                const paint = performance.getEntriesByName('first-contentful-paint')[0];
                return {
                    console_bytes: sum(own), api_bytes: sum(api), files: own.length,
                    fcp_ms: paint ? paint.startTime : null,
                    dom_elements: document.getElementsByTagName('*').length,
                    heap_bytes: performance.memory ? performance.memory.usedJSHeapSize : null,
                };
            }"""
        )
        return {"first_render_s": rendered, **figures}
    finally:
        context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--chromium", default=os.environ.get("AURORA_CHROMIUM"))
    args = parser.parse_args()
    chromium = args.chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("no Chromium: install Debian's chromium package or pass --chromium PATH")
    from playwright.sync_api import sync_playwright  # the dev extra

    with tempfile.TemporaryDirectory(prefix="aurora-console-bench-") as folder:
        settings = gateway_settings(Path(folder), free_port())
        asyncio.run(prepare(settings))
        started = time.perf_counter()
        asyncio.run(seed(settings.effective_database_url, args.alerts))
        print(f"seeded {args.alerts:,} alerts in {time.perf_counter() - started:.1f} s")
        process = multiprocessing.get_context("spawn").Process(
            target=run_gateway, args=(settings,), name="gateway"
        )
        process.start()
        base = f"http://{HOST}:{settings.port}"
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    call("GET", f"{base}/api/v1/auth/providers")
                    break
                except OSError:
                    if not process.is_alive() or time.monotonic() > deadline:
                        sys.exit("the gateway did not start")
                    time.sleep(0.1)
            username = settings.admin_username
            api_baseline(base, username)  # warm the gateway's caches first
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=chromium,
                    args=[
                        "--headless=new",
                        "--no-sandbox",
                        "--disable-gpu",
                        "--no-first-run",
                        "--disable-background-networking",
                        "--disable-component-update",
                    ],
                )
                visit(browser, base, username)  # a first visit warms the browser itself
                visits, baselines = [], []
                for _ in range(args.runs):
                    baselines.append(api_baseline(base, username))
                    visits.append(visit(browser, base, username))
                browser.close()
        finally:
            process.terminate()
            process.join(30)

    def median(key: str) -> float:
        return statistics.median(v[key] for v in visits if v[key] is not None)

    render, baseline = median("first_render_s"), statistics.median(baselines)
    report = {
        "alerts": args.alerts,
        "runs": args.runs,
        "first_render_ms": round(render * 1000, 1),
        "api_calls_ms": round(baseline * 1000, 1),
        "render_over_api": round(render / baseline, 2),
        "sign_in_fcp_ms": round(median("fcp_ms"), 1),
        "console_kb": round(median("console_bytes") / 1024, 1),
        "api_kb": round(median("api_bytes") / 1024, 1),
        "console_files": int(median("files")),
        "dom_elements": int(median("dom_elements")),
        "heap_mb": round(median("heap_bytes") / 2**20, 1) if visits[0]["heap_bytes"] else None,
    }
    print(
        f"queue of {args.alerts:,} alerts, median of {args.runs} visits from a fresh profile:\n"
        f"  first render (sign-in submit to {PAGE} rows) {report['first_render_ms']:8.1f} ms\n"
        f"  baseline: the same 3 API calls from Python  {report['api_calls_ms']:8.1f} ms"
        f"  (ratio {report['render_over_api']:.2f})\n"
        f"  sign-in page first contentful paint         {report['sign_in_fcp_ms']:8.1f} ms\n"
        f"  page weight: console {report['console_kb']} kB in {report['console_files']} files"
        f" + API {report['api_kb']} kB (compressed as sent)\n"
        f"  DOM elements {report['dom_elements']}, JS heap {report['heap_mb']} MB"
    )
    print(json.dumps(report))


if __name__ == "__main__":
    main()
