"""The specialist base (agents.runtime.specialist): how a specialist declares itself, the
tool helpers, and traced tool calls."""

from __future__ import annotations

import threading
from typing import Any, cast

import pytest
from pydantic import BaseModel

from agents.acp.finding import Finding
from agents.acp.server import CallContext
from agents.runtime.specialist import Specialist, ToolTrace, string_tool
from core.schemas import Severity


class EchoRequest(BaseModel):
    text: str


class Echo(Specialist, name="echo", method="echo_text"):
    """Echo: says back
    what it is   given."""

    method_description = "Say the text back."
    request_model = EchoRequest

    async def builtin(self, request: EchoRequest, trace: ToolTrace) -> Finding:
        return Finding(agent=self.name, summary=request.text, severity=Severity.LOW, confidence=0.5)


class FakeContext:
    """What a ToolTrace reports to: the calls and thoughts, in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str]] = []

    async def tool_call(
        self, tool: str, arguments: dict[str, Any], summary: str, took_ms: float
    ) -> None:
        self.calls.append((tool, arguments, summary))

    async def thought(self, step: str, text: str) -> None:
        self.calls.append((step, {}, text))


def test_a_specialist_declares_itself_in_its_class_statement() -> None:
    assert (Echo.name, Echo.method, Echo.prompt_name) == ("echo", "echo_text", "echo")
    assert Echo.description == "Echo: says back what it is given."
    assert Echo.request_model is EchoRequest


def test_a_specialist_without_a_docstring_is_refused() -> None:
    with pytest.raises(TypeError, match="docstring is the agent card's description"):

        class Mute(Specialist, name="mute", method="say_nothing"):
            method_description = "Nothing."
            request_model = EchoRequest


def test_string_tool_declares_string_arguments() -> None:
    async def handler(arguments: dict[str, Any]) -> object:
        return arguments

    tool = string_tool("scan", "Scan it.", handler, "command_line", optional=("image",))
    assert (tool.name, tool.description, tool.handler) == ("scan", "Scan it.", handler)
    assert tool.parameters == {
        "type": "object",
        "properties": {"command_line": {"type": "string"}, "image": {"type": "string"}},
        "required": ["command_line"],
    }
    bare = string_tool("context", "Everything.", handler)
    assert bare.parameters == {"type": "object", "properties": {}}


async def test_compute_runs_in_a_thread_when_asked_and_is_traced() -> None:
    context = FakeContext()
    trace = ToolTrace(cast(CallContext, context))
    here = threading.get_ident()

    def where() -> int:
        return threading.get_ident()

    in_loop = await trace.compute("where", {"n": 1}, where, lambda ident: f"thread {ident}")
    in_thread = await trace.compute("where", {"n": 2}, where, str, thread=True)
    assert in_loop == here
    assert in_thread != here
    assert [call[:2] for call in context.calls] == [("where", {"n": 1}), ("where", {"n": 2})]
    assert [(e.kind, e.ref, e.summary) for e in trace.evidence] == [
        ("tool_call", "where", f"thread {here}"),
        ("tool_call", "where", str(in_thread)),
    ]
    assert trace.calls == 2
