"""Fixtures of the contract suite: the parsed ``spec/API.md``."""

from __future__ import annotations

import pytest

from tests.contract.spec import Spec, require_spec


@pytest.fixture(scope="session")
def spec() -> Spec:
    """The parsed spec; tests that take it skip when ``../shared/spec/API.md`` is absent."""
    return require_spec()
