"""Specialist.map_context: a sentence or two through the sentence mapper, longer text as a
document, the tool call naming the sentences behind each technique."""

from __future__ import annotations

from pathlib import Path
from typing import cast

import pytest

from agents.acp.server import CallContext
from agents.runtime.specialist import (
    CONTEXT_MAPPING_MIN_SCORE,
    SHORT_CONTEXT_SENTENCES,
    AgentDeps,
    ToolTrace,
)
from core.settings import Settings
from tests.agents.runtime.test_specialist import Echo, FakeContext
from tests.tools.test_attack_document import REPORT
from tools.attack import AttackKB


@pytest.fixture(scope="module")
def kb() -> AttackKB:
    return AttackKB.load()


def echo(kb: AttackKB, tmp_path: Path) -> Echo:
    return Echo(AgentDeps(settings=Settings(data_dir=tmp_path), attack=kb))


async def test_short_text_keeps_the_sentence_mapper(kb: AttackKB, tmp_path: Path) -> None:
    context = FakeContext()
    trace = ToolTrace(cast(CallContext, context))
    text = "The actor used PowerShell to download a payload and created a scheduled task."
    found = await echo(kb, tmp_path).map_context(text, trace)
    expected = kb.map_text(text, limit=3, min_score=CONTEXT_MAPPING_MIN_SCORE)
    assert found == [m.technique_id for m in expected]
    assert [(tool, arguments) for tool, arguments, _ in context.calls] == [
        ("attack_map_text", {"chars": len(text)})
    ]
    assert trace.evidence[0].ref == "attack_map_text"


async def test_a_report_is_mapped_as_a_document_without_a_top_three(
    kb: AttackKB, tmp_path: Path
) -> None:
    context = FakeContext()
    trace = ToolTrace(cast(CallContext, context))
    found = await echo(kb, tmp_path).map_context(REPORT, trace)
    document = kb.map_document(REPORT)
    assert found == [t.id for t in document]
    assert len(found) > 3
    [(tool, arguments, summary)] = context.calls
    assert tool == "attack_map_document"
    assert arguments["sentences"] > SHORT_CONTEXT_SENTENCES
    assert len(summary) <= 500
    # The summary names each technique with (the start of) its best sentence.
    for technique in document:
        assert technique.id in summary
    lsass = next(t for t in document if t.id == "T1003.001")
    assert f'T1003.001 {lsass.score:.2f}: "{lsass.sentences[0].text[:12]}' in summary
    assert trace.evidence[0].ref == "attack_map_document"
    assert trace.evidence[0].summary == summary


@pytest.mark.parametrize("text", [None, "", "  \n "])
async def test_no_text_maps_nothing(kb: AttackKB, tmp_path: Path, text: str | None) -> None:
    context = FakeContext()
    assert await echo(kb, tmp_path).map_context(text, ToolTrace(cast(CallContext, context))) == []
    assert context.calls == []
