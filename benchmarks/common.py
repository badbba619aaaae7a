"""Pieces the benchmark scripts share: loopback ports, the gateway's bootstrap and login,
percentiles, process CPU time."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Final

from aiohttp import ClientSession

from core.db import create_database
from core.db.migrate import upgrade
from core.security.passwords import PasswordHasher
from core.settings import Settings
from gateway.server import serve
from gateway.users import service as users

HOST: Final = "127.0.0.1"
"""Benchmarks only ever listen on and target loopback."""
SECRET: Final = "benchmark-secret-benchmark-secret-0123456789"
ADMIN_PASSWORD: Final = "benchmark password 1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else -1.0


def cpu_seconds(pid: int) -> float | None:
    """CPU time a process has used so far (Linux /proc); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


async def prepare(settings: Settings) -> None:
    """Migrate the database and create the admin (password :data:`ADMIN_PASSWORD`), as
    ``aurora up`` does."""
    database = create_database(settings.effective_database_url)
    try:
        await upgrade(database)
        async with database.session() as db:
            await users.bootstrap_admin(
                db=db,
                hasher=PasswordHasher.from_settings(settings),
                username=settings.admin_username,
                password=ADMIN_PASSWORD,
            )
    finally:
        await database.dispose()


def run_gateway(settings: Settings) -> None:
    """A child process's target: the gateway for ``settings`` as ``aurora serve`` runs it
    (``settings`` name a loopback port and no access log)."""
    asyncio.run(serve(settings, banner=lambda _url: None))


async def login(
    session: ClientSession, base: str, username: str, password: str, alive: Callable[[], bool]
) -> str:
    """A token from the gateway at ``base``, retried while it starts (up to a minute);
    RuntimeError when it exits, refuses the login, or never comes up."""
    for _ in range(600):
        if not alive():
            raise RuntimeError("the gateway exited while starting")
        try:
            async with session.post(
                f"{base}/api/v1/auth/token", json={"username": username, "password": password}
            ) as response:
                if response.status == 200:
                    return str((await response.json())["access_token"])
                if response.status < 500:
                    raise RuntimeError(f"login answered {response.status}")
        except OSError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the gateway at {base} did not come up")
