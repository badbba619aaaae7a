"""The finding model (agents.acp.finding): severities on the wire, actions built from data of
any length."""

from __future__ import annotations

import json

import pydantic
import pytest

from agents.acp.finding import Finding, RecommendedAction, TargetSource
from core.schemas import Severity


def test_severity_is_the_platform_scale_and_plain_text_on_the_wire() -> None:
    finding = Finding(agent="x", summary="s", severity="high", confidence=0.5)
    assert finding.severity is Severity.HIGH
    assert finding.severity > Severity.MEDIUM
    assert json.loads(finding.model_dump_json())["severity"] == "high"
    assert json.dumps(finding.model_dump()["severity"]) == '"high"'
    with pytest.raises(pydantic.ValidationError):
        Finding(agent="x", summary="s", severity="severe", confidence=0.5)


def test_an_action_is_cut_to_its_limits() -> None:
    source = TargetSource(kind="command_line", ref="command_lines[0]")
    action = RecommendedAction.of("block_url", "u" * 600, "r" * 3000, "low", [source])
    assert (len(action.target), len(action.reason)) == (512, 2000)
    assert action.provenance == [source]
    assert RecommendedAction.of("watchlist", "t", "why", "medium").provenance == []
