"""Many alerts at once in a platform's database, as the alerts service writes them
(benchmarks.console's seeder: the API would take minutes to take 10,000 one by one), from a
child process (a test driving a browser has an event loop running already)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def seed_alerts(data_dir: Path, count: int) -> None:
    """``count`` distinct alerts in the SQLite database under ``data_dir``."""
    code = (
        "import asyncio, sys; from benchmarks.console import seed; "
        "asyncio.run(seed(sys.argv[1], int(sys.argv[2])))"
    )
    url = f"sqlite+aiosqlite:///{data_dir}/aurora.db"
    subprocess.run([sys.executable, "-c", code, url, str(count)], check=True, cwd=ROOT, timeout=300)
