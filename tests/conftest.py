"""Shared fixtures: settings on a temp data dir, a migrated database (SQLite, and PostgreSQL when
one is provided), and a live gateway behind an aiohttp test client."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import io
import os
import secrets
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy.engine import make_url

from core.db import create_database
from core.db.migrate import upgrade
from core.security.permissions import Role
from core.settings import Settings
from gateway.app import create_app
from gateway.keys import DATABASE, HASHER, TOKENS
from gateway.routing import Route
from gateway.users import service as users

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the project, or ``AURORA_SHARED_DATA``; None when absent."""
    configured = os.environ.get("AURORA_SHARED_DATA")
    candidate = Path(configured) if configured else PROJECT_ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


def postgres_admin_url() -> str | None:
    url = os.environ.get("AURORA_TEST_POSTGRES_URL")
    if not url and os.environ.get("AURORA_REQUIRE_POSTGRES") == "1":
        pytest.fail("AURORA_REQUIRE_POSTGRES=1 but AURORA_TEST_POSTGRES_URL is not set")
    return url or None


BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres" and postgres_admin_url() is None:
        pytest.skip("PostgreSQL suite: set AURORA_TEST_POSTGRES_URL (.ci/run provisions one)")
    return str(request.param)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return _backend(request)


@contextlib.asynccontextmanager
async def _database(backend: str, folder: Path, *, migrated: bool) -> AsyncIterator[str]:
    """The URL of a database of its own in ``folder`` (SQLite) or on the test server
    (PostgreSQL): empty, or with ``migrated`` already a copy of the migrated template (a file
    copy, or one statement); a PostgreSQL database is dropped afterwards."""
    if backend == "sqlite":
        path = folder / "aurora.db"
        if migrated:
            shutil.copyfile(await _sqlite_template(), path)
        yield f"sqlite+aiosqlite:///{path}"
        return
    import asyncpg  # only the PostgreSQL suite needs it

    admin = make_url(postgres_admin_url() or "")
    name = f"aurora_t_{uuid.uuid4().hex[:12]}"
    url = admin.set(database=name).render_as_string(hide_password=False)
    dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    template = await _postgres_template(url) if migrated else None
    connection = await asyncpg.connect(dsn)
    try:
        clause = f' TEMPLATE "{template}"' if template else ""
        await connection.execute(f'CREATE DATABASE "{name}"{clause}')
    finally:
        await connection.close()
    try:
        yield url
    finally:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


@pytest.fixture
async def database_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[str]:
    """A database of its own for the test: empty, or (for a test that asks for ``settings``)
    already a copy of the migrated template."""
    async with _database(backend, tmp_path, migrated="settings" in request.fixturenames) as url:
        yield url


_CHDB_PATH: list[Path] = []


def chdb_path() -> Path:
    """The one chDB data path of this test process (chDB allows no second one); tests isolate
    themselves with a database each."""
    if not _CHDB_PATH:
        path = Path(tempfile.mkdtemp(prefix="aurora-chdb-"))
        atexit.register(shutil.rmtree, path, ignore_errors=True)
        _CHDB_PATH.append(path)
    return _CHDB_PATH[0]


def make_settings(data_dir: Path, database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "database_url": database_url,
        "chdb_path": chdb_path(),
        "ingest_workers": 0,  # parsing on a thread; worker processes have their own tests
        # An agent a test's gateway cannot reach is down, not starting: calls to it fail at once
        # (waiting for starting agents has tests of its own).
        "acp_startup_grace_seconds": 0,
        "clickhouse_database": f"t_{uuid.uuid4().hex[:16]}",
        "jwt_secret": secrets.token_urlsafe(32),
        "argon2_time_cost": 1,
        "argon2_memory_kib": 1024,
        "argon2_parallelism": 1,
    }
    values.update(overrides)
    return Settings(**values)


_TEMPLATES: dict[str, str] = {}
"""A migrated database per backend, made once per test process: each test's database is a
copy of it (a file copy, or PostgreSQL's ``CREATE DATABASE ... TEMPLATE``), not 13 migrations."""


async def _migrated(url: str) -> None:
    database = create_database(url)
    try:
        await upgrade(database)
    finally:
        await database.dispose()


async def _sqlite_template() -> Path:
    if "sqlite" not in _TEMPLATES:
        folder = Path(tempfile.mkdtemp(prefix="aurora-template-"))
        atexit.register(shutil.rmtree, folder, ignore_errors=True)
        await _migrated(f"sqlite+aiosqlite:///{folder / 'template.db'}")
        _TEMPLATES["sqlite"] = str(folder / "template.db")
    return Path(_TEMPLATES["sqlite"])


def _drop_postgres_template(dsn: str, name: str) -> None:
    import asyncio

    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()

    asyncio.run(drop())


async def _postgres_template(url: str) -> str:
    """The name of the migrated template database on ``url``'s server (made once per test
    process)."""
    import asyncpg

    target = make_url(url)
    dsn = target.set(drivername="postgresql", database="postgres").render_as_string(
        hide_password=False
    )
    if "postgres" not in _TEMPLATES:
        name = f"aurora_template_{uuid.uuid4().hex[:12]}"
        connection = await asyncpg.connect(dsn)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        atexit.register(_drop_postgres_template, dsn, name)
        await _migrated(target.set(database=name).render_as_string(hide_password=False))
        _TEMPLATES["postgres"] = name
    return _TEMPLATES["postgres"]


@pytest.fixture
async def settings(tmp_path: Path, database_url: str) -> Settings:
    """Settings on a temporary data dir and a database migrated to the newest schema (a copy
    of the template: ``database_url`` made it, seeing this fixture asked for)."""
    return make_settings(tmp_path / "data", database_url)


class Gateway:
    """A running gateway and helpers to act on it as various users."""

    def __init__(self, client: TestClient[web.Request, web.Application]) -> None:
        self.client = client
        self.app = client.server.app
        assert self.app is not None

    async def create_user(self, username: str, role: Role, password: str = PASSWORD) -> None:
        async with self.app[DATABASE].session() as db:
            await users.create_user(
                db=db, hasher=self.app[HASHER], username=username, password=password, role=role
            )

    async def login(self, username: str, password: str = PASSWORD) -> dict[str, str]:
        response = await self.client.post(
            "/api/v1/auth/token", json={"username": username, "password": password}
        )
        body = await response.json()
        assert response.status == 200, body
        return {"Authorization": f"Bearer {body['access_token']}"}

    async def user(self, role: Role, username: str | None = None) -> dict[str, str]:
        """Create a user with ``role`` and return headers carrying a fresh token for it."""
        name = username or f"{role.value.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
        await self.create_user(name, role)
        return await self.login(name)

    def token_for(self, user_id: str, **kwargs: Any) -> str:
        return self.app[TOKENS].issue(user_id, **kwargs).token


async def start_gateway(
    settings: Settings, extra_routes: tuple[Route, ...] = ()
) -> TestClient[web.Request, web.Application]:
    client: TestClient[web.Request, web.Application] = TestClient(
        TestServer(create_app(settings, extra_routes=extra_routes))
    )
    await client.start_server()
    return client


@contextlib.asynccontextmanager
async def specialist_on_loopback(name: str, data_dir: Path, jwt_secret: Any) -> AsyncIterator[str]:
    """Specialist ``name`` serving ACP on a free loopback port, with tokens signed by
    ``jwt_secret`` (the gateway's); yields its URL for ``agent_urls``."""
    from agents.catalog import load_specialist
    from agents.runtime.specialist import AgentDeps, build_server
    from core.security.tokens import TokenService
    from tools.attack import AttackKB

    agent_settings = Settings(data_dir=data_dir, jwt_secret=jwt_secret)
    specialist = load_specialist(name)(AgentDeps(settings=agent_settings, attack=AttackKB.load()))
    await specialist.start()
    listener = await build_server(
        specialist, agent_settings, TokenService.from_settings(agent_settings)
    ).start("127.0.0.1", 0)
    try:
        yield f"ws://127.0.0.1:{next(iter(listener.sockets)).getsockname()[1]}"
    finally:
        listener.close()
        await listener.wait_closed()
        await specialist.stop()


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[Gateway]:
    client = await start_gateway(settings)
    try:
        yield Gateway(client)
    finally:
        await close_gateway(client)


@pytest.fixture(scope="module", params=BACKENDS)
def module_backend(request: pytest.FixtureRequest) -> str:
    return _backend(request)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_gateway(
    module_backend: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Gateway]:
    """One gateway for every test of a module, on each backend: for modules whose tests only
    read or are refused (they change nothing another test could see), which would otherwise
    start a gateway each. The module runs on one event loop
    (``pytestmark = pytest.mark.asyncio(loop_scope="module")``)."""
    folder = tmp_path_factory.mktemp("shared-gateway")
    async with _database(module_backend, folder, migrated=True) as url:
        client = await start_gateway(make_settings(folder / "data", url))
        try:
            yield Gateway(client)
        finally:
            await close_gateway(client)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def shared_admin(shared_gateway: Gateway) -> dict[str, str]:
    """An administrator's headers on the module's :func:`shared_gateway`."""
    return await shared_gateway.user(Role.ADMIN, "root-admin")


CLOSE_SECONDS = 90.0
"""How long a test gateway may take to close (seconds on a loaded machine, usually far less)."""


async def close_gateway(client: TestClient[web.Request, web.Application]) -> None:
    """Close ``client``'s gateway; one that does not close within :data:`CLOSE_SECONDS` fails
    the test with the stack of every task still running (what the shutdown waits on), rather
    than hanging until the test's own timeout, which shows only the threads."""
    try:
        async with asyncio.timeout(CLOSE_SECONDS):
            await client.close()
    except TimeoutError:
        stacks = []
        for task in asyncio.all_tasks():
            frames = io.StringIO()
            task.print_stack(file=frames)
            stacks.append(f"{task.get_name()}:\n{frames.getvalue()}")
        pytest.fail(
            f"the gateway did not close within {CLOSE_SECONDS:g} s; its tasks:\n"
            + "\n".join(stacks)
        )


@pytest.fixture
async def admin(gateway: Gateway) -> dict[str, str]:
    return await gateway.user(Role.ADMIN, "root-admin")
