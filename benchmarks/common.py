"""Pieces the benchmark scripts share: loopback ports, waiting for a server to be ready, the
gateway's bootstrap and login, percentiles, process CPU time."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, Final

from aiohttp import ClientError, ClientSession, ClientTimeout

from core import eventloop
from core.settings import Settings

HOST: Final = "127.0.0.1"
"""Benchmarks only ever listen on and target loopback."""
SECRET: Final = "benchmark-secret-benchmark-secret-0123456789"
ADMIN_PASSWORD: Final = "benchmark password 1"
READY_SECONDS: Final = 180.0
"""How long a server may take to come up: importing the platform alone takes seconds, and tens
of seconds on a loaded machine. Waiting ends as soon as it is ready, and at once if it exits."""
POLL_SECONDS: Final = 0.05
PUBLIC_PROBE: Final = "/api/v1/auth/providers"
"""A gateway route that needs no credential: it answers once the gateway has started
(aiohttp accepts connections only after every resource and loop of the app is up)."""


def shared_data() -> Path:
    """The shared third-party data: ``$AURORA_SHARED_DATA``, else ``../shared/data`` beside the
    project (as the tests find it). It may not exist: a user's clone has none."""
    configured = os.environ.get("AURORA_SHARED_DATA")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared/data"


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


def gateway_settings(data_dir: Path, port: int, **overrides: Any) -> Settings:
    """A benchmark gateway's settings: on loopback at ``port``, its state under ``data_dir``, the
    benchmarks' JWT secret, tokens that outlive a run, no access log, warnings only, and cheap
    password hashing (the benchmarks time requests, not sign-ins); ``overrides`` on top."""
    values: dict[str, Any] = {
        "host": HOST,
        "port": port,
        "data_dir": data_dir,
        "jwt_secret": SECRET,
        "access_token_ttl_seconds": 7200,
        "access_log": False,
        "log_level": "WARNING",
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "argon2_parallelism": 1,
    }
    return Settings(**(values | overrides))


async def prepare(settings: Settings) -> None:
    """Migrate the database and create the admin (password :data:`ADMIN_PASSWORD`), as
    ``aurora up`` does."""
    from core.db import create_database
    from core.db.migrate import upgrade
    from core.security.passwords import PasswordHasher
    from gateway.users import service as users

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
    (``settings`` name a loopback port and no access log).

    The gateway is imported here, not with this module: processes the gateway spawns (its
    ingest workers) import the main module of the process that started it again, which is the
    benchmark, and ``aurora serve``'s workers do not import the gateway either."""
    from gateway.server import serve

    eventloop.run(serve(settings, banner=lambda _url: None))


def _wait_on(
    process: BaseProcess, arrived: Callable[[float], bool], what: str, within: float
) -> None:
    """Block until ``arrived(timeout)`` is true; RuntimeError when ``process`` exits first or
    ``within`` seconds pass."""
    deadline = time.monotonic() + within
    while not arrived(POLL_SECONDS):
        if not process.is_alive():
            raise RuntimeError(f"{process.name} exited ({process.exitcode}) before {what}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{process.name}: {within:g} s passed before {what}")


def wait_started(process: BaseProcess, ready: Event, *, within: float = READY_SECONDS) -> None:
    """Block until ``process`` sets ``ready`` (its server listens); RuntimeError when it exits
    first or ``within`` seconds pass."""
    _wait_on(process, ready.wait, "it was ready", within)


def wait_message(
    connection: Connection, process: BaseProcess, *, within: float = READY_SECONDS
) -> object:
    """The next message ``process`` sends on ``connection``; RuntimeError when it exits first
    or ``within`` seconds pass."""
    _wait_on(process, connection.poll, "it answered", within)
    return connection.recv()


async def wait_serving(
    session: ClientSession,
    url: str,
    alive: Callable[[], bool],
    *,
    headers: dict[str, str] | None = None,
    within: float = READY_SECONDS,
) -> None:
    """Return once ``GET url`` answers 200; RuntimeError when the server exits first (``alive``
    turns false) or ``within`` seconds pass, naming the last answer."""
    deadline = time.monotonic() + within
    last = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"the server exited before {url} answered")
        try:
            async with session.get(
                url, headers=headers, timeout=ClientTimeout(total=10)
            ) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except (ClientError, TimeoutError) as err:  # not listening yet
            last = repr(err)
        await asyncio.sleep(POLL_SECONDS)
    raise RuntimeError(f"{url} did not answer 200 within {within:g} s (last: {last})")


async def login(
    session: ClientSession, base: str, username: str, password: str, alive: Callable[[], bool]
) -> str:
    """A token from the gateway at ``base`` once it serves (see :func:`wait_serving`);
    RuntimeError when it exits, never comes up, or refuses the login."""
    await wait_serving(session, f"{base}{PUBLIC_PROBE}", alive)
    async with session.post(
        f"{base}/api/v1/auth/token", json={"username": username, "password": password}
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"login answered {response.status}: {await response.text()}")
        return str((await response.json())["access_token"])
