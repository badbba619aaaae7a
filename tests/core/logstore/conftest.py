"""The log store tests' fixtures: a store of their own (one database) in the process's chDB.

``empty_store`` is a fresh store per test. ``module_store`` is one store for a whole module, for
tests that only read what the module put in it, or that keep to rows of their own (a source of
their own): making a store costs a database and a table. Tests using it run on the module's
event loop (``@pytest.mark.asyncio(loop_scope="module")``).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from core.logstore.store import LogStore
from core.settings import Settings
from tests.conftest import chdb_path


@contextlib.asynccontextmanager
async def open_store() -> AsyncIterator[LogStore]:
    """A started store on a database of its own, dropped afterwards."""
    settings = Settings(
        data_dir=Path("/nonexistent"),
        chdb_path=chdb_path(),
        clickhouse_database=f"t_{uuid.uuid4().hex[:12]}",
        log_retention_days=0,
    )
    store = LogStore.from_settings(settings)
    await store.start()
    try:
        yield store
    finally:
        await store.drop()
        await store.close()


@pytest.fixture
async def empty_store() -> AsyncIterator[LogStore]:
    async with open_store() as store:
        yield store


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_store() -> AsyncIterator[LogStore]:
    async with open_store() as store:
        yield store
