"""Value types of the LLM backend: messages, tools, tool calls, completions, usage, health.

Messages are plain dicts in the OpenAI chat format (``{"role": ..., "content": ...}``), so a
transcript can be stored, sent over ACP or replayed as is; the helpers below build the common ones.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.llm.errors import ToolArgumentsInvalid

type Message = dict[str, Any]
"""One chat message in the OpenAI wire format."""

type ToolHandler = Callable[[dict[str, Any]], Awaitable[object]]
"""Runs a tool: takes the parsed arguments, returns something JSON-able (or a str)."""


def system_message(text: str) -> Message:
    """A ``system`` message."""
    return {"role": "system", "content": text}


def user_message(text: str) -> Message:
    """A ``user`` message."""
    return {"role": "user", "content": text}


def tool_message(tool_call_id: str, content: str) -> Message:
    """The result of one tool call, paired with it by ``tool_call_id``."""
    return {"role": "tool", "tool_call_id": tool_call_id, "content": content}


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens one request (or a sum of requests) consumed."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the model may call: its name, what it does, the JSON Schema of its arguments.

    ``handler`` is what :func:`~core.llm.tool_loop.run_tool_loop` runs for it; a tool only
    offered to :meth:`~core.llm.backend.LLMBackend.complete` needs none.
    """

    name: str
    description: str
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    handler: ToolHandler | None = None

    def to_openai(self) -> dict[str, Any]:
        """The ``tools[]`` entry of a chat completion request."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": dict(self.parameters),
            },
        }


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A call the model asked for. ``arguments`` raises :class:`ToolArgumentsInvalid` when the
    model's argument text is not a JSON object; ``arguments_error`` says so without raising."""

    id: str
    name: str
    raw_arguments: str
    arguments_error: str | None = None
    _parsed: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def parse(cls, *, id: str, name: str, raw_arguments: str) -> ToolCall:
        """Parse the model's argument text once; an empty text counts as ``{}``."""
        text = raw_arguments.strip()
        if not text:
            return cls(id, name, raw_arguments, None, {})
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            return cls(id, name, raw_arguments, f"not valid JSON ({err.msg} at char {err.pos})")
        if not isinstance(value, dict):
            return cls(id, name, raw_arguments, f"a JSON {type(value).__name__}, not an object")
        return cls(id, name, raw_arguments, None, value)

    @property
    def arguments(self) -> dict[str, Any]:
        """The parsed arguments (a fresh copy); :class:`ToolArgumentsInvalid` when malformed."""
        if self._parsed is None:
            raise ToolArgumentsInvalid(
                tool_call_id=self.id,
                tool_name=self.name,
                raw_arguments=self.raw_arguments,
                reason=self.arguments_error or "missing",
            )
        return copy.deepcopy(self._parsed)

    def to_openai(self) -> dict[str, Any]:
        """The call as it appears in an assistant message (the model's own argument text)."""
        return {
            "id": self.id,
            "type": "function",
            "function": {"name": self.name, "arguments": self.raw_arguments},
        }


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of a streamed tool call: ``id`` and ``name`` come with the first piece of call
    ``index``; ``arguments`` holds the next fragment of its argument text."""

    index: int
    id: str | None
    name: str | None
    arguments: str


@dataclass(frozen=True, slots=True)
class Completion[P]:
    """One model reply: text and/or tool calls, the parsed structured output when a
    ``response_model`` was asked for (else None), token usage, latency and the serving model."""

    text: str | None
    tool_calls: tuple[ToolCall, ...]
    parsed: P
    usage: Usage
    model: str
    latency_ms: float
    finish_reason: str | None

    def as_message(self) -> Message:
        """The reply as the assistant message to append to a transcript."""
        message: Message = {"role": "assistant", "content": self.text}
        if self.tool_calls:
            message["tool_calls"] = [call.to_openai() for call in self.tool_calls]
        return message


@dataclass(frozen=True, slots=True)
class HealthReport:
    """What a probe of the endpoint found. ``detail`` says why when it is not reachable."""

    reachable: bool
    latency_ms: float
    models: tuple[str, ...]
    model: str | None
    model_served: bool
    detail: str | None = None
