"""Many alerts at once, written through the alerts service into a platform's database (the API
would take minutes to take 10,000 one by one; what the console reads is the same rows)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from core.db.engine import create_database
from core.schemas import Severity
from gateway.alerts.schemas import AlertCreate
from gateway.alerts.service import create_alert

ROOT = Path(__file__).resolve().parents[2]
SEVERITIES = list(Severity)
SOURCES = ("suricata", "sysmon", "zeek", "okta", "crowdstrike")


async def _seed(url: str, count: int, batch: int) -> None:
    database = create_database(url)
    try:
        for start in range(0, count, batch):
            async with database.session() as db:
                for n in range(start, min(count, start + batch)):
                    body = AlertCreate(
                        title=f"Seeded alert {n}: outbound connection from host-{n % 97}",
                        severity=SEVERITIES[n % len(SEVERITIES)],
                        source=SOURCES[n % len(SOURCES)],
                        rule_id=f"SEED-{n % 13}",
                        tags=["seeded"],
                        entities=[{"type": "host", "value": f"host-{n % 97}.corp.example"}],
                    )
                    await create_alert(db=db, actor="seeder", body=body, dedup_window_seconds=0)
                await db.commit()
    finally:
        await database.dispose()


def seed_alerts(data_dir: Path, count: int) -> None:
    """``count`` distinct alerts in the SQLite database under ``data_dir``, written by a child
    process (a test driving a browser has an event loop running already)."""
    subprocess.run(
        [sys.executable, "-m", "tests.console.seed", str(data_dir), str(count)],
        check=True,
        cwd=ROOT,
        timeout=300,
    )


if __name__ == "__main__":
    folder, wanted = sys.argv[1:]
    asyncio.run(_seed(f"sqlite+aiosqlite:///{folder}/aurora.db", int(wanted), batch=1000))
