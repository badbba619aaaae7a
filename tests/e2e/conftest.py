"""Fixtures of the end-to-end tests: an environment for ``aurora`` on a fresh data directory and
free ports, and the platforms a test starts, killed after it whatever happened."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.aurora import Platform, aurora_env


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return aurora_env(tmp_path / "var")


@pytest.fixture
def platforms() -> Iterator[list[Platform]]:
    """Where a test puts the platforms it starts: any still running after it is killed."""
    started: list[Platform] = []
    yield started
    for platform in started:
        platform.close()
