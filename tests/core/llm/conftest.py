"""The LLM backend under test, talking to a scripted OpenAI-compatible server on loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.llm import LLMBackend
from tests.fakes.openai_server import ScriptedOpenAI
from tests.ports import free_port

MODEL = "aurora-test-model"


@pytest.fixture
async def fake() -> AsyncIterator[ScriptedOpenAI]:
    async with ScriptedOpenAI(models=(MODEL,)) as server:
        yield server


@pytest.fixture
async def backend(fake: ScriptedOpenAI) -> AsyncIterator[LLMBackend]:
    # No retries by default: a test that wants them says so.
    async with LLMBackend(
        base_url=fake.base_url, model=MODEL, max_retries=0, timeout_seconds=5
    ) as client:
        yield client


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on, from below the ephemeral range: no other test's
    connection can be using it meanwhile (a port bound to 0 and released could be)."""
    return free_port()
