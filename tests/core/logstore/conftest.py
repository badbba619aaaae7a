"""The log store tests' fixture: a store of their own (one database) in the process's chDB."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.logstore.store import LogStore
from core.settings import Settings
from tests.conftest import chdb_path


@pytest.fixture
async def empty_store() -> AsyncIterator[LogStore]:
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
