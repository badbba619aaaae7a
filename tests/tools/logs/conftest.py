"""Shared fixtures of the log parser tests: a fixed ingest time and the shared data folders."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.conftest import shared_data_dir

RECEIVED = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
"""The ingest time every test parses at, so year inference and fallbacks are checkable."""


def shared(relative: str) -> Path:
    """A folder of the shared data, or a skip saying what is missing."""
    root = shared_data_dir()
    if root is None:
        pytest.skip("shared data absent: set AURORA_SHARED_DATA or provide ../shared/data")
    path = root / relative
    if not path.exists():
        pytest.skip(f"shared data lacks {relative}")
    return path
